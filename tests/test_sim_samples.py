"""The demo's sample jobs look like a county's (issue 13: `保洁 180元/月`, `电工 170元/件` were not)."""

from __future__ import annotations

from hallsim.central import SAMPLE_JOBS

PIECE_WORK = {"缝纫工", "手工编织", "剥核桃"}  # paid by the piece in these halls
PLAUSIBLE = {"day": (100, 600), "hour": (15, 60), "piece": (0.1, 20), "month": (2000, 9000)}


def test_sample_wages_have_the_unit_and_size_of_the_job():
    assert len(SAMPLE_JOBS) >= 6
    for job in SAMPLE_JOBS:
        wage, title = job["wage"], job["title"]
        low, high = PLAUSIBLE[wage["unit"]]
        assert low <= wage["amount"] <= high, f"{title}: {wage}"
        assert (wage["unit"] == "piece") == (title in PIECE_WORK), f"{title}: piece rates only for piece work"
    units = {job["wage"]["unit"] for job in SAMPLE_JOBS}
    assert {"day", "hour"} <= units


def test_sample_jobs_carry_what_the_screen_shows():
    for job in SAMPLE_JOBS:
        assert job["location"] and job["employer"] and len(job["contact"]) == 11
