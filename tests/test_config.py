"""Configuration: every validation rule, the example file, and check-config's exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge.config import SCHEMA, ConfigError, load, parse
from edge.example import render
from edge.layers import FILE_NOT_FOUND
from edge.schema import Key, TableList, defaults, read_secret, validate
from edge.settings import to_dict

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "firmware_config" / "hall-edge.example.toml"
PLAIN = '[mqtt]\ntls = false\n[storage]\ndir = "/tmp/x"\n'


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(text, "test.toml")
    return caught.value.errors


def one_error(text: str) -> str:
    errors = errors_of(text)
    assert len(errors) == 1, errors
    return errors[0]


def hall_edge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        check=False,
    )


def check_config(*args: str) -> subprocess.CompletedProcess[str]:
    return hall_edge("check-config", *args)


# ---- the example -------------------------------------------------------------


def test_example_file_is_exactly_the_generated_one():
    generated = subprocess.run(
        [sys.executable, "-m", "edge.example"], capture_output=True, timeout=30, cwd=ROOT, check=True
    ).stdout.decode("utf-8")
    assert generated == render()
    assert EXAMPLE.read_text(encoding="utf-8") == generated, (
        "run: .venv/bin/python -m edge.example > firmware_config/hall-edge.example.toml"
    )


def test_example_shows_every_key_and_its_default():
    text = EXAMPLE.read_text(encoding="utf-8")
    for table, spec in SCHEMA.items():
        if isinstance(spec, dict):
            assert f"[{table}]" in text
            for name, leaf in spec.items():
                if isinstance(leaf, Key):
                    assert f"\n{name} = " in text, f"{table}.{name}"


def test_example_parses_to_the_defaults():
    assert to_dict(parse(EXAMPLE.read_text(encoding="utf-8"))) == defaults(SCHEMA)


def test_check_config_fails_on_the_unedited_examples_placeholders_and_only_warns_when_asked():
    result = check_config(str(EXAMPLE))
    assert result.returncode == 1
    assert "3 problem(s)" in result.stderr
    assert "site, device: 'qinshui/hall-01' is the example's placeholder" in result.stderr
    assert "mqtt.host: 'localhost' is the example's placeholder" in result.stderr
    assert "commands.public_keys: none is set" in result.stderr
    warned = check_config("--placeholders", "warn", str(EXAMPLE))
    assert warned.returncode == 0, warned.stderr
    assert "ok" in warned.stdout and warned.stderr.count("warning:") == 3


def test_check_config_accepts_an_edited_example(tmp_path):
    text = EXAMPLE.read_text().replace('site = "qinshui"', 'site = "yangcheng"')
    text = text.replace('host = "localhost"', 'host = "mqtt.example.cn"')
    head, tail = text.split("[commands]\n")
    keys = 'public_keys = { it-1 = "' + "A" * 43 + '=" }'
    text = head + "[commands]\n" + tail.replace("public_keys = {}", keys, 1)
    path = tmp_path / "hall-edge.toml"
    path.write_text(text)
    result = check_config(str(path))
    assert result.returncode == 0, result.stderr


def test_empty_file_means_all_defaults():
    settings = parse("")
    assert settings.site == "qinshui"
    assert settings.mqtt.port == 8883
    assert settings.time.zone == "Asia/Shanghai"
    assert [c.code for c in settings.queue.categories] == ["A", "B", "C", "D", "E"]


# ---- types -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('[mqtt]\nport = "2883"', "mqtt.port: '2883' is not an integer"),
        ("[mqtt]\nport = true", "mqtt.port: true is not an integer"),
        ("[mqtt]\nport = 2883.5", "mqtt.port: 2883.5 is not an integer"),
        ('[mqtt]\ntls = "no"', "mqtt.tls: 'no' is not true or false"),
        ("[mqtt]\ntls = 0", "mqtt.tls: 0 is not true or false"),
        ("[mqtt]\nhost = 10", "mqtt.host: 10 is not a string"),
        ('[display]\npage_seconds = "6"', "display.page_seconds: '6' is not a number"),
        ('[locker]\napproval_required = "drill"', "locker.approval_required: 'drill' is not a list"),
        ('[commands]\npublic_keys = "abc"', "commands.public_keys: 'abc' is not a table"),
        ('mqtt = "broker"', "mqtt: 'broker' is not a table"),
        ('[queue]\ncategories = "A"', "queue.categories: 'A' is not a list of tables"),
    ],
)
def test_a_value_of_the_wrong_type_is_named_with_what_was_expected(line, expected):
    assert one_error(line).startswith(expected)


def test_an_integer_is_accepted_where_a_number_is_expected():
    settings = parse("[display]\npage_seconds = 7")
    assert settings.display.page_seconds == 7.0
    assert isinstance(settings.display.page_seconds, float)


def test_a_long_value_is_shortened_in_the_message():
    message = one_error(f'[mqtt]\nport = "{"9" * 200}"')
    assert "..." in message
    assert len(message) < 120


# ---- checks ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[mqtt]\nport = 70000", "mqtt.port: 70000 is not a port (1-65535)"),
        ("[mqtt]\nport = 0", "mqtt.port: 0 is not a port (1-65535)"),
        ('[mqtt]\nhost = ""', "mqtt.host: '' is not a host name or IP address"),
        (
            '[mqtt]\nhost = "mqtts://mqtt.lgsc.example.gov.cn"',
            "mqtt.host: 'mqtts://mqtt.lgsc.example.gov.cn' is not",
        ),
        ('[mqtt]\nhost = "10.0.0.5:2883"', "mqtt.host: '10.0.0.5:2883' is not a host name or IP address"),
        ('site = "Qinshui"', "site: 'Qinshui' is not a name of 1-32 characters from a-z, 0-9 and -"),
        (f'device = "{"a" * 33}"', "device: "),
        ('device = ""', "device: '' is not a name"),
        ("[mqtt]\nkeepalive = 2", "mqtt.keepalive: 2 is not seconds between 5 and 3600"),
        ('[mqtt]\nprotocol = "mqttv3"', "mqtt.protocol: 'mqttv3' is not one of 'mqttv5', 'mqttv311'"),
        ('[time]\nzone = "Mars/Olympus"', "time.zone: 'Mars/Olympus' is not a time zone name"),
        ('[time]\nclock = "maybe"', "time.clock: 'maybe' is not one of 'auto', 'synced', 'unsynced'"),
        ('[logging]\nlevel = "loud"', "logging.level: 'loud' is not one of"),
        ('[display]\nnight_from = "24:00"', "display.night_from: '24:00' is not a time of day HH:MM"),
        ('[display]\nopen_from = "7:00"', "display.open_from: '7:00' is not a time of day HH:MM"),
        ("[display]\nbrightness = 256", "display.brightness: 256 is not a level between 0 and 255"),
        ("[display]\nblock_orientation = 45", "display.block_orientation: 45 is not one of 0, 90, -90, 180"),
        ("[printer]\nbaudrate = 4800", "printer.baudrate: 4800 is not one of 9600"),
        ("[buzzer]\npin = 28", "buzzer.pin: 28 is not a BCM GPIO number 0-27 (or -1 for none)"),
        ("[buzzer]\npin = -2", "buzzer.pin: -2 is not a BCM GPIO number"),
        (
            '[[queue.categories]]\ncode = "a"\npin = 5',
            "queue.categories[0].code: 'a' is not one capital letter",
        ),
        ("[[queue.windows]]\nnumber = 100", "queue.windows[0].number: 100 is not a window number between"),
        (
            f'[printer]\nqr_url = "https://x.cn/{"r" * 300}"',
            "printer.qr_url: 'https://x.cn/rrr",
        ),
    ],
)
def test_a_value_that_fails_its_check_names_key_value_and_expectation(text, expected):
    assert one_error(text).startswith(expected)


def test_boundary_values_are_accepted():
    settings = parse(
        '[mqtt]\nport = 65535\nkeepalive = 5\n[buzzer]\npin = 27\n[time]\nzone = "UTC"\n'
        '[display]\nnight_from = "23:59"\nbrightness = 0'
    )
    assert settings.mqtt.port == 65535
    assert settings.buzzer.pin == 27


def test_the_error_message_from_the_issue_reads_exactly():
    assert one_error("[mqtt]\nport = 70000") == "mqtt.port: 70000 is not a port (1-65535)"


# ---- unknown keys ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[mqtt]\nprot = 2883", "mqtt.prot: unknown key (did you mean 'port'?)"),
        ('sitee = "x"', "sitee: unknown key (did you mean 'site'?)"),
        ("[displya]\nenabled = true", "displya: unknown key (did you mean 'display'?)"),
        (
            '[[queue.categories]]\ncode = "A"\nping = 5',
            "queue.categories[0].ping: unknown key (did you mean 'pin'?)",
        ),
    ],
)
def test_an_unknown_key_is_an_error_with_a_did_you_mean(text, expected):
    assert expected in one_error(text)


def test_an_unknown_key_with_nothing_close_lists_the_known_keys():
    message = one_error("[mqtt]\nzzzz = 1")
    assert "did you mean" not in message
    assert "known keys here:" in message
    assert "port" in message


# ---- all at once ---------------------------------------------------------------


def test_three_mistakes_are_all_reported_at_once():
    errors = errors_of('site = "Bad Name"\n[mqtt]\nport = 70000\nhots = "x"\n')
    assert len(errors) == 3
    assert any(e.startswith("site:") for e in errors)
    assert any(e.startswith("mqtt.port:") for e in errors)
    assert any("did you mean 'host'" in e for e in errors)


def test_check_config_reports_three_mistakes_and_exits_1(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('site = "Bad Name"\n[mqtt]\nport = 70000\nhots = "x"\n')
    result = check_config(str(path))
    assert result.returncode == 1
    assert "3 problem(s)" in result.stderr
    assert "mqtt.port: 70000 is not a port (1-65535)" in result.stderr
    assert "Traceback" not in result.stderr


# ---- rules across keys ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[mqtt]\nca_file = ""', "mqtt.ca_file: '' is not set; TLS needs a CA file"),
        ('[mqtt]\ntls = false\nusername = "hall"', "mqtt.password_file: '' is not set"),
        ('[mqtt]\ntls = false\ncert_file = "/c.pem"', "mqtt.key_file: a client certificate needs both"),
        (
            '[[queue.categories]]\ncode = "A"\npin = 5\n[[queue.categories]]\ncode = "A"\npin = 6',
            "queue.categories[1].code: 'A' is not unique (also queue.categories[0])",
        ),
        (
            "[[queue.windows]]\nnumber = 1\n[[queue.windows]]\nnumber = 1",
            "queue.windows[1].number: 1 is not unique",
        ),
        (
            '[[queue.categories]]\ncode = "A"\npin = 16',
            "queue.windows[0].call_pin: GPIO 16 is not free (already queue.categories[0].pin)",
        ),
        ("[locker]\nenabled = true", "locker.enabled: true is not possible with rfid.enabled = false"),
        ('[rfid]\nenabled = true\ncard_key_file = ""', "rfid.card_key_file: '' is not set"),
    ],
)
def test_rules_that_span_keys(text, expected):
    assert any(e.startswith(expected) for e in errors_of(text)), errors_of(text)


@pytest.mark.parametrize("key", ["5", '"abc"', '"' + "A" * 44 + '"'])
def test_a_public_key_must_be_base64_of_32_bytes(key):
    message = one_error(f"[commands]\npublic_keys = {{sim = {key}}}")
    assert message.startswith("commands.public_keys: ")
    assert "base64 raw 32-byte Ed25519 public key ('sim' is not)" in message


def test_a_real_public_key_is_accepted():
    parse('[commands]\npublic_keys = {sim = "' + "A" * 43 + '="}')


def test_locker_compartments_need_unique_numbers_tool_ids_and_pins(tmp_path):
    key = tmp_path / "card.key"
    key.write_bytes(b"k" * 32)
    key.chmod(0o600)
    text = (
        f'[rfid]\nenabled = true\ncard_key_file = "{key}"\n[locker]\nenabled = true\n'
        '[[locker.compartments]]\nnumber = 1\ntool_id = "T1"\nlock_pin = 17\ndoor_pin = 27\n'
        '[[locker.compartments]]\nnumber = 1\ntool_id = "T1"\nlock_pin = 17\ndoor_pin = 4\n'
    )
    errors = errors_of(text)
    assert "locker.compartments[1].number: 1 is not unique (also locker.compartments[0])" in errors
    assert "locker.compartments[1].tool_id: 'T1' is not unique (also locker.compartments[0])" in errors
    assert any(e.startswith("locker.compartments[1].lock_pin: GPIO 17 is not free") for e in errors)


def test_pins_of_disabled_peripherals_may_overlap():
    parse('[buzzer]\nenabled = false\npin = 5\n[mqtt]\nca_file = "/x"')


def test_rs485_locks_free_the_lock_pins(tmp_path):
    key = tmp_path / "card.key"
    key.write_bytes(b"k" * 32)
    key.chmod(0o600)
    parse(
        f'[rfid]\nenabled = true\ncard_key_file = "{key}"\n[locker]\nenabled = true\nlocks = "rs485"\n'
        "[[locker.compartments]]\nnumber = 1\nlock_pin = 5\ndoor_pin = 27\n"
    )


# ---- secret files --------------------------------------------------------------


def secret(tmp_path: Path, mode: int) -> Path:
    path = tmp_path / f"secret-{mode:o}"
    path.write_bytes(b"s3cret\n")
    path.chmod(mode)
    return path


def test_a_secret_file_readable_by_others_is_refused_with_the_reason(tmp_path):
    path = secret(tmp_path, 0o644)
    message = one_error(f'[mqtt]\ntls = false\nusername = "hall"\npassword_file = "{path}"')
    assert message.startswith(f"mqtt.password_file: secret file {path} is readable by group or others")
    assert "mode 0644" in message
    assert f"chmod 600 {path}" in message


def test_check_config_refuses_an_open_secret_file_and_says_why(tmp_path):
    key = secret(tmp_path, 0o644)
    config = tmp_path / "hall-edge.toml"
    config.write_text(PLAIN + f'[rfid]\nenabled = true\ncard_key_file = "{key}"\n')
    result = check_config(str(config))
    assert result.returncode == 1
    expected = f"rfid.card_key_file: secret file {key} is readable by group or others (mode 0644)"
    assert expected in result.stderr
    assert f"chmod 600 {key}" in result.stderr


def test_a_secret_file_readable_by_group_is_refused(tmp_path):
    path = secret(tmp_path, 0o640)
    assert "mode 0640" in one_error(f'[rfid]\nenabled = true\ncard_key_file = "{path}"')


def test_a_private_secret_file_is_accepted_and_read(tmp_path):
    path = secret(tmp_path, 0o600)
    parse(f'[mqtt]\ntls = false\nusername = "hall"\npassword_file = "{path}"')
    assert read_secret(str(path)) == b"s3cret"


def test_read_secret_refuses_an_open_file(tmp_path):
    with pytest.raises(PermissionError, match="readable by group or others"):
        read_secret(str(secret(tmp_path, 0o604)))


def test_a_missing_secret_file_is_named(tmp_path):
    missing = tmp_path / "nope.key"
    assert one_error(f'[rfid]\nenabled = true\ncard_key_file = "{missing}"') == (
        f"rfid.card_key_file: secret file {missing} does not exist"
    )


def test_a_secret_that_is_a_folder_is_refused(tmp_path):
    message = one_error(f'[rfid]\nenabled = true\ncard_key_file = "{tmp_path}"')
    assert message.endswith("is not a regular file")


def test_secret_files_of_a_disabled_feature_are_not_checked(tmp_path):
    parse(PLAIN + f'[rfid]\nenabled = false\ncard_key_file = "{tmp_path / "nope"}"')


def test_the_default_card_key_path_is_not_checked_while_rfid_is_off(tmp_path):
    """The default card key path does not exist here, and rfid is off by default."""
    parse(PLAIN)


# ---- the file itself -----------------------------------------------------------


def test_a_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path / "missing.toml")
    assert caught.value.errors == [FILE_NOT_FOUND]


def test_invalid_toml_is_a_config_error_with_the_line():
    errors = errors_of('[mqtt\nport = 1"')
    assert errors[0].startswith("not valid TOML:")
    assert "line 1" in errors[0]


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path):
    path = tmp_path / "gbk.toml"
    path.write_bytes('hall_name = "公益性零工市场"\n'.encode("gbk"))
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert caught.value.errors == ["not UTF-8 text"]


def test_a_folder_given_as_config_cannot_be_read(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path)
    assert caught.value.errors[0].startswith("cannot be read:")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "file not found"),
        (b"[mqtt\n", "not valid TOML"),
        (b"\xff\xfe\x00", "not UTF-8 text"),
        ("dir", "cannot be read"),
    ],
)
def test_check_config_on_a_bad_file_exits_1_with_a_message_and_no_traceback(tmp_path, content, expected):
    path = tmp_path / "hall-edge.toml"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    result = check_config(str(path))
    assert result.returncode == 1
    assert str(path) in result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_check_config_on_an_unreadable_file(tmp_path):
    path = tmp_path / "hall-edge.toml"
    path.write_text(PLAIN)
    path.chmod(0)
    result = check_config(str(path))
    assert result.returncode == 1
    assert "cannot be read: Permission denied" in result.stderr


def test_run_with_a_missing_config_exits_1_without_traceback(tmp_path):
    result = hall_edge("run", "--config", str(tmp_path / "missing.toml"))
    assert result.returncode == 1
    assert "missing.toml: file not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_with_an_invalid_config_logs_every_problem(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[mqtt]\nport = 70000\nhots = 1\n")
    result = hall_edge("run", "--config", str(path))
    assert result.returncode == 1
    assert result.stderr.count("level=error") == 2
    assert "Traceback" not in result.stderr


# ---- the validator on its own --------------------------------------------------


def test_validate_fills_defaults_in_table_lists():
    schema = {"items": TableList({"a": Key(int, 1), "b": Key(str, "x")})}
    settings, errors = validate({"items": [{"a": 2}, {}]}, schema)
    assert errors == []
    assert settings["items"] == [{"a": 2, "b": "x"}, {"a": 1, "b": "x"}]


def test_settings_attribute_access_fails_like_an_attribute():
    with pytest.raises(AttributeError):
        _ = parse("").nothing_here
