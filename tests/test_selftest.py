"""hall-edge selftest against the simulator: pty printer and readers, mock pins, real brokers."""

from __future__ import annotations

import re

import pytest
from gpiozero import Button, Device
from hallsim.broker import Mosquitto, free_port
from hallsim.lockboard import SimLockBoard
from hallsim.pins import PinBoard, SimFactory
from hallsim.printer import SimPrinter
from hallsim.rfid import SimReader
from pki import tls_files
from support import make_config, wait_for

from edge.cli import main
from edge.selftest import (
    FAIL,
    PASS,
    SKIP,
    WARN,
    Check,
    check_broker,
    check_clock,
    check_gpio,
    check_lock_boards,
    check_printer,
    check_reader,
    check_screen,
    check_service,
    check_storage,
    print_test_ticket,
    render_table,
    run_checks,
    show_test_pattern,
)


@pytest.fixture
def printer(tmp_path):
    sim = SimPrinter(tmp_path / "paper").start()
    yield sim
    sim.stop()


def printer_config(tmp_path, port: str):
    return make_config(tmp_path, {"printer": {"enabled": True, "port": port, "status_timeout_s": 0.3}})


# ---- printer --------------------------------------------------------------------


def test_a_printer_that_answers_status_passes(tmp_path, printer):
    row = check_printer(printer_config(tmp_path, printer.port))
    assert (row.name, row.result) == ("printer", PASS)
    assert "status ok" in row.detail
    assert printer.status_queries >= 1


@pytest.mark.parametrize(
    ("state", "result", "todo"),
    [("paper-out", FAIL, "load a paper roll"), ("cover-open", FAIL, "close"), ("paper-low", WARN, "soon")],
)
def test_printer_faults_say_what_to_do(tmp_path, printer, state, result, todo):
    printer.set_status(state)
    row = check_printer(printer_config(tmp_path, printer.port))
    assert row.result == result
    assert todo in row.todo


def test_a_silent_printer_fails(tmp_path, printer):
    printer.set_status("offline")
    row = check_printer(printer_config(tmp_path, printer.port))
    assert row.result == FAIL
    assert "no answer" in row.detail
    assert "baudrate" in row.todo


def test_a_printer_that_is_never_asked_is_a_warning(tmp_path, printer):
    printer.set_status("offline")
    config = make_config(
        tmp_path, {"printer": {"enabled": True, "port": printer.port, "status_queries": False}}
    )
    row = check_printer(config)
    assert row.result == WARN
    assert "--print" in row.todo
    assert printer.status_queries == 0


def test_a_missing_printer_port_is_a_failure_row(tmp_path):
    row = check_printer(printer_config(tmp_path, str(tmp_path / "hall-printer")))
    assert row.result == FAIL
    assert "hall-printer" in row.detail
    assert "udev" in row.todo


def test_a_disabled_printer_is_skipped(tmp_path):
    assert check_printer(make_config(tmp_path)).result == SKIP


# ---- reader ----------------------------------------------------------------------


def reader_config(tmp_path, kind: str, port: str):
    key = tmp_path / "card.key"
    key.write_bytes(b"k" * 32)
    key.chmod(0o600)
    return make_config(
        tmp_path, {"rfid": {"enabled": True, "reader": kind, "port": port, "card_key_file": str(key)}}
    )


def test_a_pn532_that_answers_passes_and_a_hung_one_fails(tmp_path):
    with SimReader("pn532") as reader:
        config = reader_config(tmp_path, "pn532", reader.port)
        assert check_reader(config).result == PASS
        reader.mute()
        row = check_reader(config)
        assert row.result == FAIL
        assert "HSU" in row.todo


def test_an_rdm6300_port_that_opens_passes(tmp_path):
    with SimReader("rdm6300") as reader:
        row = check_reader(reader_config(tmp_path, "rdm6300", reader.port))
    assert row.result == PASS
    assert "tap a card" in row.detail


def test_a_missing_reader_fails(tmp_path):
    row = check_reader(reader_config(tmp_path, "rdm6300", str(tmp_path / "hall-rfid")))
    assert row.result == FAIL
    assert "hall-rfid" in row.todo


# ---- RS-485 lock boards ---------------------------------------------------------------


def test_rs485_lock_boards_that_answer_pass_and_silent_ones_fail(tmp_path):
    key = tmp_path / "card.key"
    key.write_bytes(b"k" * 32)
    key.chmod(0o600)
    with SimLockBoard(boards=(0,)) as boards:
        config = make_config(
            tmp_path,
            {
                "rfid": {"enabled": True, "card_key_file": str(key)},
                "locker": {"enabled": True, "locks": "rs485", "rs485_port": boards.port},
            },
        )
        row = check_lock_boards(config)
        assert row.result == PASS, row
        assert "board(s) [0] answer" in row.detail
        boards.muted = True
        row = check_lock_boards(config)
        assert row.result == FAIL
        assert "[0] did not answer" in row.detail
        assert "DIP-switch" in row.todo
    assert check_lock_boards(make_config(tmp_path)).result == SKIP


# ---- SPI, GPIO --------------------------------------------------------------------


def test_spi_device_missing_tells_to_enable_spi(tmp_path):
    config = make_config(tmp_path, {"display": {"enabled": True, "device": "max7219", "spi_port": 6}})
    row = check_screen(config)
    assert row.result == FAIL
    assert "/dev/spidev6.0" in row.detail
    assert "dtparam=spi=on" in row.todo
    assert check_screen(make_config(tmp_path, {"display": {"enabled": True}})).result == SKIP  # dummy


def queue_config(tmp_path):
    return make_config(tmp_path, {"queue": {"enabled": True}, "buzzer": {"enabled": True, "pin": 12}})


def test_gpio_pins_of_the_configuration_are_usable(tmp_path, pins):
    row = check_gpio(queue_config(tmp_path))
    assert row.result == PASS, row
    assert "9 pins usable: 5, 6, 12, 13, 16, 19, 20, 21, 26" in row.detail
    assert pins.pin(12).state == 0  # the buzzer was never driven


def test_locker_doors_read_open_are_a_warning_and_locks_are_never_driven(tmp_path, pins):
    key = tmp_path / "card.key"
    key.write_bytes(b"k" * 32)
    key.chmod(0o600)
    config = make_config(
        tmp_path,
        {"rfid": {"enabled": True, "card_key_file": str(key)}, "locker": {"enabled": True}},
    )
    row = check_gpio(config)
    assert row.result == WARN  # mock pins float high under the pull-up: like three open doors
    assert "23 (door 2) open, 25 (door 3) open, 27 (door 1) open" in row.detail
    assert "6 pins usable: 17, 22, 23, 24, 25, 27" in row.detail
    for lock in (17, 22, 24):
        assert pins.pin(lock).state == 0
        assert pins.pin(lock).pull == "floating"


def test_with_the_simulator_pin_board_a_held_key_warns_and_shut_doors_pass(tmp_path):
    key = tmp_path / "card.key"
    key.write_bytes(b"k" * 32)
    key.chmod(0o600)
    config = make_config(
        tmp_path,
        {
            "queue": {"enabled": True},
            "rfid": {"enabled": True, "card_key_file": str(key)},
            "locker": {"enabled": True},
        },
    )
    with PinBoard(tmp_path / "pins.sock") as board:
        board.press(16)  # window 1's call key held down
        for door in (27, 23, 25):
            board.set_switch(door, closed=True)
        factory = SimFactory(str(tmp_path / "pins.sock"))
        Device.pin_factory = factory
        try:
            wait_for(lambda: len(factory.levels) == 4, 5, "the board's levels")
            row = check_gpio(config)
            assert row.result == WARN, row
            assert row.detail.endswith("; 16 (call 1) pressed")
            assert "key held or stuck" in row.todo
            board.release(16)
            wait_for(lambda: factory.levels.get(16) is True, 5, "the key released")
            assert check_gpio(config).result == PASS
            assert not any(board.output(lock) for lock in (17, 22, 24))  # locks never driven
            assert not board.changes(17)
        finally:
            factory.close()
            Device.pin_factory = None


def test_a_pin_in_use_fails_with_what_to_do(tmp_path, pins):
    with Button(20):
        row = check_gpio(queue_config(tmp_path))
    assert row.result == FAIL
    assert "20 (recall 1)" in row.detail
    assert "stop the service" in row.todo


# ---- broker ------------------------------------------------------------------------


def test_the_broker_is_reachable(tmp_path, broker):
    row = check_broker(make_config(tmp_path, {"mqtt": {"port": broker.port}}))
    assert row.result == PASS, row
    assert "connected in" in row.detail


def test_no_broker_fails_fast(tmp_path):
    row = check_broker(make_config(tmp_path, {"mqtt": {"port": free_port()}}), timeout_s=3)
    assert row.result == FAIL
    assert "mqtt.host" in row.todo


def test_tls_is_checked_with_the_configured_ca(tmp_path):
    ca, cert, key = tls_files(tmp_path / "pki")
    with Mosquitto(tmp_path / "broker", tls=(ca, cert, key)) as tls_broker:
        good = make_config(tmp_path, {"mqtt": {"port": tls_broker.tls_port, "tls": True, "ca_file": ca}})
        row = check_broker(good)
        assert row.result == PASS, row
        assert "(TLS)" in row.detail
        (tmp_path / "other").mkdir()
        other_ca, _, _ = tls_files(tmp_path / "other")
        wrong = make_config(
            tmp_path, {"mqtt": {"port": tls_broker.tls_port, "tls": True, "ca_file": other_ca}}
        )
        row = check_broker(wrong, timeout_s=5)
        assert row.result == FAIL
        assert "CERTIFICATE_VERIFY_FAILED" in row.detail or "certificate" in row.detail.lower()
        assert "ca_file" in row.todo


# ---- clock, storage ----------------------------------------------------------------


def test_an_unsynced_clock_fails(tmp_path):
    assert check_clock(make_config(tmp_path, {"time": {"clock": "synced"}})).result == PASS
    row = check_clock(make_config(tmp_path, {"time": {"clock": "unsynced"}}))
    assert row.result == FAIL
    assert "timedatectl" in row.todo


def test_storage_with_too_little_space_fails(tmp_path):
    assert check_storage(make_config(tmp_path)).result == PASS
    row = check_storage(make_config(tmp_path, {"storage": {"disk_low_mb": 1_000_000}}))
    assert row.result == FAIL
    assert "free space" in row.todo


# ---- the whole run -------------------------------------------------------------------


def test_no_running_service_here(tmp_path):
    row = check_service(make_config(tmp_path))
    assert row.result in (PASS, SKIP)  # this machine runs no hall-edge.service
    assert "hall-edge.service not running" in row.detail or row.result == SKIP


def test_a_check_that_breaks_is_a_failure_row_not_a_crash(tmp_path):
    def check_explodes(_config):
        raise RuntimeError("driver bug")

    rows = run_checks(make_config(tmp_path), [check_explodes])
    assert rows == [Check("explodes", FAIL, "RuntimeError: driver bug", "see docs/troubleshooting.md")]


def test_table_puts_what_to_do_under_the_row():
    text = render_table([Check("printer", FAIL, "no answer", "switch it on"), Check("clock", PASS, "ok")])
    assert text.splitlines() == [
        "check    result  detail",
        "printer  FAIL    no answer",
        "                 -> switch it on",
        "clock    PASS    ok",
    ]


def write_config(tmp_path, overrides: dict) -> str:
    from support import _to_toml

    from edge.example import toml_value

    doc = {
        "storage": {"dir": str(tmp_path / "state")},
        "mqtt": {"host": "127.0.0.1", "tls": False},
        "time": {"clock": "synced"},
        "display": {"enabled": False},
        "printer": {"enabled": False},
        "queue": {"enabled": False},
    }
    for table, values in overrides.items():
        doc[table] = {**doc[table], **values}
    path = tmp_path / "hall-edge.toml"
    path.write_text(_to_toml(doc, toml_value))
    return str(path)


def test_selftest_command_passes_with_everything_there(tmp_path, broker, printer, capsys):
    config = write_config(
        tmp_path, {"mqtt": {"port": broker.port}, "printer": {"enabled": True, "port": printer.port}}
    )
    code = main(["selftest", "--config", config])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "all checks passed" in out


def test_selftest_command_exits_1_with_a_failure_row(tmp_path, broker, capsys):
    port = str(tmp_path / "no-printer")
    config = write_config(
        tmp_path, {"mqtt": {"port": broker.port}, "printer": {"enabled": True, "port": port}}
    )
    assert main(["selftest", "--config", config]) == 1
    out = capsys.readouterr().out
    assert re.search(r"^printer +FAIL +cannot open .*no-printer", out, re.M), out
    assert "1 failed: printer" in out


def test_selftest_with_no_config_yet_says_so(tmp_path, capsys):
    assert main(["selftest", "--config", str(tmp_path / "missing.toml")]) == 1
    err = capsys.readouterr().err
    assert "file not found" in err
    assert "check-config" in err


def test_print_sends_a_test_ticket_and_shows_a_test_pattern(tmp_path, printer):
    config = make_config(
        tmp_path,
        {"printer": {"enabled": True, "port": printer.port}, "display": {"enabled": True, "device": "dummy"}},
    )
    row = print_test_ticket(config)
    assert row.result == PASS
    ticket = wait_for(lambda: printer.tickets, 10, "the test ticket")[0]
    assert "打印自检" in ticket.text
    assert show_test_pattern(config, hold_s=0).result == PASS
