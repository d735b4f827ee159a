"""hallsim.pins: real gpiozero devices on SimFactory, driven and watched by PinBoard."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from gpiozero import Button, OutputDevice
from gpiozero.exc import BadPinFactory
from hallsim.pins import PinBoard, SimFactory, daemon_env
from support import wait_for


@pytest.fixture
def board(tmp_path):
    with PinBoard(tmp_path / "pins.sock") as pin_board:
        yield pin_board


@pytest.fixture
def factory(board):
    pin_factory = SimFactory(board.socket_path)
    yield pin_factory
    pin_factory.close()


def test_a_pressed_button_is_seen_by_gpiozero(board, factory):
    pressed = []
    button = Button(5, pull_up=True, pin_factory=factory)
    button.when_pressed = lambda: pressed.append("A")
    assert board.wait_setup(5)
    assert not button.is_pressed
    board.press(5)
    wait_for(lambda: pressed == ["A"], 5, "when_pressed")
    assert button.is_pressed
    board.release(5)
    wait_for(lambda: not button.is_pressed, 5, "released")
    button.close()


def test_a_pin_that_changes_all_day_does_not_grow_the_daemon(board, factory):
    """gpiozero's MockPin keeps a list of every change; the simulated hall's pins keep the last."""
    button = Button(6, pull_up=True, pin_factory=factory)
    assert board.wait_setup(6)
    presses = []
    button.when_pressed = lambda: presses.append(1)
    for _ in range(200):
        board.click(6, hold_s=0)
    wait_for(lambda: len(presses) == 200 and not button.is_pressed, 10, "200 presses seen")
    assert len(factory.pin(6).states) == 1
    button.close()


def test_the_board_sees_output_changes_with_times(board, factory):
    lock = OutputDevice(17, pin_factory=factory)
    assert board.wait_setup(17)
    assert board.output(17) is False
    lock.on()
    assert board.wait_output(17, True)
    lock.off()
    assert board.wait_output(17, False)
    changes = board.changes(17)
    assert [c.state for c in changes] == [True, False]
    assert changes[0].at <= changes[1].at <= changes[1].received
    assert board.snapshot()["outputs"] == {"17": 0}
    lock.close()


def test_a_door_switch_closed_reads_low_and_open_reads_high(board, factory):
    door = Button(27, pull_up=True, pin_factory=factory)
    board.set_switch(27, closed=True)
    wait_for(lambda: door.is_pressed, 5, "door closed")
    board.set_switch(27, closed=False)
    wait_for(lambda: not door.is_pressed, 5, "door open")
    door.close()


def test_levels_set_before_the_daemon_connects_are_replayed(board):
    board.set_switch(27, closed=True)
    late = SimFactory(board.socket_path)
    try:
        wait_for(lambda: late.levels.get(27) is False, 5, "replayed level")
        door = Button(27, pull_up=True, pin_factory=late)
        assert door.is_pressed
        door.close()
    finally:
        late.close()


def test_a_new_factory_reads_the_replayed_levels_at_once(board):
    """`hall-edge selftest` reads each door the moment it claims the pin: it found every shut
    door of the demo "open" because the board's replay had not arrived yet."""
    for pin in (23, 25, 27):
        board.set_switch(pin, closed=True)
    for _ in range(5):
        late = SimFactory(board.socket_path)
        try:
            doors = [Button(pin, pull_up=True, pin_factory=late) for pin in (23, 25, 27)]
            assert [door.is_pressed for door in doors] == [True, True, True]
            for door in doors:
                door.close()
        finally:
            late.close()


def test_released_to_the_pull_reads_the_pull(board, factory):
    button = Button(6, pull_up=True, pin_factory=factory)
    board.press(6)
    wait_for(lambda: button.is_pressed, 5)
    board.drive(6, None)
    wait_for(lambda: not button.is_pressed, 5, "pull-up again")
    button.close()


def test_without_a_socket_the_factory_says_what_it_needs(monkeypatch, tmp_path):
    monkeypatch.delenv("HALLSIM_PINS", raising=False)
    with pytest.raises(BadPinFactory, match="HALLSIM_PINS"):
        SimFactory()
    with pytest.raises(BadPinFactory, match="no hallsim pin board"):
        SimFactory(str(tmp_path / "nobody.sock"), connect_timeout=0.1)


def test_a_board_that_goes_away_does_not_break_the_device(tmp_path):
    board = PinBoard(tmp_path / "pins.sock").start()
    factory = SimFactory(board.socket_path)
    lock = OutputDevice(22, pin_factory=factory)
    board.stop()
    lock.on()  # nobody listens any more: no exception
    assert lock.value == 1
    lock.close()
    factory.close()


CHILD = textwrap.dedent(
    """
    import signal
    from gpiozero import Button, Device, OutputDevice
    assert type(Device._default_pin_factory()).__name__ == "SimFactory"
    lock = OutputDevice(17)
    button = Button(5, pull_up=True, bounce_time=0.05)
    button.when_pressed = lock.on
    button.when_released = lock.off
    print("up", flush=True)
    signal.pause()  # serves the button until the test kills it
    """
)


def test_gpiozero_in_another_process_finds_the_factory_through_its_entry_point(board):
    env = {**os.environ, **daemon_env(board.socket_path)}
    child = subprocess.Popen([sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "up\n"  # the devices are built
        assert board.wait_connected(10)
        board.press(5)
        assert board.wait_output(17, True, 5)
        board.release(5)
        assert board.wait_output(17, False, 5)
    finally:
        child.kill()
        child.wait()
    wait_for(lambda: board.clients == 0, 5, "the board notices the daemon left")
