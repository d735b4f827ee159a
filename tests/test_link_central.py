"""The fake central platform against the real link: snapshots out, events in, counted."""

from __future__ import annotations

import hashlib
import hmac
import json

from hallsim.central import Central, _gaps, card_hash, load_signing_key
from link_support import start_link, unique_site
from support import PLATFORM_SEED, platform_public_key, wait_for

from edge.messages import SnapshotUpdated


def test_card_hash_is_the_contracts():
    key = b"site-secret"
    expected = hmac.new(key, b"0A1B2C3D4E", hashlib.sha256).digest()[:16].hex()
    assert card_hash(key, "0a1b2c3d4e") == expected and len(expected) == 32


def test_gap_report():
    assert _gaps({1, 2, 3}) == []
    assert _gaps({2, 3, 7, 9}) == [[1, 1], [4, 6], [8, 8]]


def test_a_central_in_a_used_folder_remembers_the_events_it_logged(tmp_path):
    """`hall-sim demo --data DIR` again: events 1-90 are in DIR/central/events.jsonl; the new
    central reported them as a gap [1, 90] and would count them again if re-sent."""
    folder = tmp_path / "central"
    folder.mkdir()
    old = [
        {"event_id": f"E{seq}", "seq": seq, "device": "qinshui/hall-01", "type": "ticket.issued", "data": {}}
        for seq in (1, 2, 3)
    ]
    lines = [json.dumps(event) for event in old]
    (folder / "events.jsonl").write_text("\n".join([*lines, '{"cut off', ""]), encoding="utf-8")
    central = Central("127.0.0.1", 1, "qinshui", "hall-01", folder)
    report = central.report()
    assert (report["received"], report["gaps"], report["max_seq"]) == (3, [], 3)
    assert report["by_type"] == {"ticket.issued": 3}
    central._count_event(old[2])  # sent again after the restart
    assert central.report()["duplicates"] == 1


def test_central_and_link_end_to_end(tmp_path, make_hall, broker):
    site = unique_site()
    folder = tmp_path / "central"
    key = PLATFORM_SEED
    central = Central("127.0.0.1", broker.port, site, "hall-01", folder, card_key=b"k", signing_key=key)
    central.start()
    rig = start_link(make_hall, tmp_path, broker.port, site, watch=(SnapshotUpdated,))
    updates = rig.watch(SnapshotUpdated)
    try:
        wait_for(lambda: central.online, what="birth at the central")
        job_id = central.add_job(title="电工", headcount=2)
        central.publish_cards([{"uid": "0A1B2C3D4E", "worker": "W000123", "approved": ["drill"]}])
        central.publish_notices([{"id": "N1", "text": "本周四下午三点 家政技能免费培训"}])
        wait_for(lambda: {u.kind for u in updates} == {"jobs", "cards", "notices"}, what="three snapshots")
        jobs = next(u for u in updates if u.kind == "jobs").snapshot["jobs"]
        assert [j["id"] for j in jobs] == [job_id] and jobs[0]["title"] == "电工"
        cards = next(u for u in updates if u.kind == "cards").snapshot["cards"]
        assert cards[0]["h"] == card_hash(b"k", "0A1B2C3D4E")
        second = central.add_job(title="木工")
        wait_for(lambda: sum(u.kind == "jobs" for u in updates) == 2, what="second jobs snapshot")
        assert updates[-1].new_ids == frozenset({second})
        for n in range(10):
            rig.emit("ticket.called", {"ticket": f"A{n:03d}", "window": 1, "wait_s": 30})
        wait_for(lambda: central.report()["received"] == 10, what="ten events at the central")
        report = central.report()
        assert report["duplicates"] == 0 and report["gaps"] == [] and report["max_seq"] == 10
        assert report["by_type"] == {"ticket.called": 10}
        assert (tmp_path / "central" / "events.jsonl").read_text().count("\n") == 10
    finally:
        rig.stop()
        wait_for(lambda: central.online is False, what="offline at the central")
        central.stop()


def test_hall_sim_central_runs_on_its_own(tmp_path, make_hall, broker):
    import json
    import signal
    import subprocess
    import sys

    from cryptography.hazmat.primitives import serialization

    site = unique_site()
    key_file = tmp_path / "platform.pem"  # the tests' platform key, which make_config trusts
    key_file.write_bytes(
        load_signing_key(PLATFORM_SEED).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    code = "import sys; from hallsim.central import main; sys.exit(main(sys.argv[1:]))"
    args = ["--port", str(broker.port), "--site", site, "--folder", str(tmp_path), "--generate-jobs", "3"]
    args += ["--signing-key", str(key_file)]
    process = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True, stderr=subprocess.STDOUT
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith(f"central for {site}/hall-01")
        assert f'platform = "{platform_public_key()}"' in process.stdout.readline()
        rig = start_link(make_hall, tmp_path / "edge", broker.port, site, watch=(SnapshotUpdated,))
        try:
            updates = wait_for(lambda: rig.watch(SnapshotUpdated), what="generated jobs")
            assert len(updates[0].snapshot["jobs"]) == 3
            rig.emit("alarm.rfid_offline", {"port": "/dev/hall-rfid"})
            wait_for((tmp_path / "events.jsonl").read_text, what="event logged by the central")
        finally:
            rig.stop()
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=10)
    finally:
        process.kill()
    report = json.loads(output.strip().splitlines()[-1])
    assert report["received"] == 1 and report["by_type"] == {"alarm.rfid_offline": 1}
    assert process.returncode == 0


def test_a_new_epoch_restarts_the_numbering_without_a_gap(tmp_path):
    """A controller whose database was lost numbers its events from 1 again under a new epoch:
    the platform sees a restart, not a gap or duplicate seqs."""
    folder = tmp_path / "central"
    folder.mkdir()
    old = [
        {"event_id": f"A{seq}", "seq": seq, "epoch": "A", "device": "qinshui/hall-01", "type": "t.x"}
        for seq in range(1, 6)
    ]
    new = [
        {"event_id": f"B{seq}", "seq": seq, "epoch": "B", "device": "qinshui/hall-01", "type": "t.x"}
        for seq in (1, 2)
    ]
    lines = [json.dumps(event) for event in old + new]
    (folder / "events.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = Central("127.0.0.1", 1, "qinshui", "hall-01", folder).report()
    assert (report["received"], report["gaps"], report["max_seq"], report["epochs"]) == (7, [], 2, 2)
