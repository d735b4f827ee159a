"""Log lines: logfmt shape, levels, and no phone number or card UID in the clear."""

from __future__ import annotations

import io
import logging
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from edge import logs


class Captured:
    """A logger that writes formatted lines to a string, the way logs.setup formats them."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        handler = logging.StreamHandler(self.stream)
        handler.setFormatter(logs.LogfmtFormatter())
        self.logger = logging.getLogger("edge.test")
        self.logger.handlers[:] = [handler]
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)

    def text(self) -> str:
        return self.stream.getvalue()


@pytest.fixture
def captured():
    yield Captured()
    logging.getLogger("edge.test").handlers.clear()
    logging.getLogger("edge.test").propagate = True


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("contact 13812345678 today", "contact 138****5678 today"),
        ("call 138-1234-5678", "call 138****5678"),
        ("call 138 1234 5678", "call 138****5678"),
        ("tel +8613812345678", "tel +86138****5678"),
        ("a,15900001111,b", "a,159****1111,b"),
        ("two 13812345678 and 19912345678", "two 138****5678 and 199****5678"),
        ("call 138.1234.5678 or 1381 234 5678", "call 138****5678 or 138****5678"),
        ("全角１３８１２３４５６７８", "全角138****5678"),
        ("电话13812345678急招", "电话138****5678急招"),
        ("办公室 0351-7654321", "办公室 0351****4321"),
        ("010 12345678", "010****5678"),
    ],
)
def test_phone_numbers_are_masked(text, masked):
    assert logs.mask_personal(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "seq=12345678901234",  # longer digit runs are not phone numbers
        "at 1764085800000 ms",
        "12812345678",  # 12x is not a mobile prefix
        "window 3 ticket A023",
        "2026-11-30 and 2026-11-30T20:31:01.123+08:00",  # dates and times
        "J20261122-0007",  # a job id
        "hotline 12333, payload of 1048576 bytes",
    ],
)
def test_other_numbers_are_left_alone(text):
    assert logs.mask_personal(text) == text


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("tap uid=67003B51C6", "tap uid=<redacted>"),
        ('card: "04A1B2C3D4E5F6"', 'card: "<redacted>"'),
        ("card_uid=04a1b2c3", "card_uid=<redacted>"),
    ],
)
def test_raw_card_uids_are_redacted(text, masked):
    assert logs.mask_personal(text) == masked


def test_a_log_line_is_logfmt_and_masked(captured):
    captured.logger.info("job contact %s posted", "13812345678")
    assert captured.text() == 'level=info logger=edge.test msg="job contact 138****5678 posted"\n'


def test_quotes_and_newlines_stay_on_one_line(captured):
    captured.logger.warning('said "hi"\nthen left')
    assert captured.text() == 'level=warning logger=edge.test msg="said \\"hi\\"\\nthen left"\n'


def test_exceptions_are_masked_too(captured):
    try:
        raise ValueError("bad phone 13812345678 for uid=67003B51C6")
    except ValueError:
        captured.logger.exception("parse failed")
    text = captured.text()
    assert "13812345678" not in text
    assert "67003B51C6" not in text
    assert "138****5678" in text
    assert text.count("\n") == 1  # the traceback is inside the one line


def test_setup_sets_the_level_from_config_and_keeps_recent_lines():
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        logs.setup("warning")
        assert root.level == logging.WARNING
        assert logs.recent in root.handlers
        logs.recent.lines.clear()
        logging.getLogger("edge.x").info("quiet")
        for i in range(5):
            logging.getLogger("edge.x").warning("loud %d", i)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    assert [line.split('"')[1] for line in logs.recent.tail(2)] == ["loud 3", "loud 4"]
    assert logs.recent.tail(0) == []
    assert not any("quiet" in line for line in logs.recent.lines)


def test_recent_lines_carry_their_time_for_logs_tail():
    """journald stamps the lines it keeps, but `logs.tail` reads the in-memory copy: without a
    time of its own, bureau IT cannot tell a line from this morning from one a minute ago."""
    recent = logs.RecentLines(capacity=5)
    recent.setFormatter(logs.LogfmtFormatter())
    logger = logging.getLogger("edge.test.recent")
    logger.handlers[:] = [recent]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    before = datetime.now().astimezone()
    logger.info("printer port open")
    (line,) = recent.tail(1)
    stamp, rest = line.split(" ", 1)
    assert stamp.startswith("time=")
    at = datetime.fromisoformat(stamp[len("time=") :])
    assert at.utcoffset() is not None
    assert abs((at - before).total_seconds()) < 5
    assert rest == 'level=info logger=edge.test.recent msg="printer port open"'
    recent.zone = ZoneInfo("Asia/Shanghai")  # logs.setup(level, zone): hall time, as events and status
    logger.info("in hall time")
    assert recent.tail(1)[0].split(" ", 1)[0].endswith("+08:00")
