"""The printer port against the simulated printer on a real pty: status, noise, unplug and back."""

from __future__ import annotations

import termios

import pytest
from hallsim.printer import SimPrinter
from support import wait_for

from drivers import escpos
from drivers.port import GRACE_S, PortInUse
from drivers.printer import FileTransport, PrinterPort, PrintResult, open_transport, read_status


class Recorder:
    def __init__(self) -> None:
        self.states: list[str] = []
        self.failed: list[tuple[str, str]] = []
        self.written: list[str] = []
        self.unconfirmed: list[str] = []

    def result(self, result: PrintResult) -> None:
        if result.printed:
            self.written.append(result.job.key)
        elif result.printed is None:
            self.unconfirmed.append(result.job.key)
        else:
            self.failed.append((result.job.key, result.status))


@pytest.fixture
def sim(tmp_path):
    printer = SimPrinter(tmp_path / "paper", link=tmp_path / "printer").start()
    yield printer
    printer.stop()


def make_port(
    path: str, kind: str = "serial", poll_s: float = 0.1, status_queries: bool = True
) -> tuple[PrinterPort, Recorder]:
    seen = Recorder()
    port = PrinterPort(
        lambda: open_transport(kind, path, 9600),
        poll_s=poll_s,
        timeout_s=0.5,
        on_status=seen.states.append,
        on_result=seen.result,
        status_queries=status_queries,
    )
    port.start()
    return port, seen


@pytest.mark.parametrize(
    ("sim_word", "word"),
    [
        ("ok", "ok"),
        ("paper-low", "paper_low"),
        ("paper-out", "paper_out"),
        ("cover-open", "cover_open"),
        ("offline", "offline"),
    ],
)
def test_status_words_from_the_simulated_printer(sim, sim_word, word):
    sim.set_status(sim_word)
    transport = open_transport("serial", sim.port, 9600)
    try:
        status, noise = read_status(transport, 0.5)
    finally:
        transport.close()
    assert (status.word if status else "offline") == word
    assert noise == 0


def test_a_ticket_is_written_and_printed(sim):
    port, seen = make_port(sim.port)
    try:
        data = escpos.Receipt().line("A001", width=2, height=2).cut("partial").bytes()
        port.submit("A001", data)
        wait_for(lambda: sim.tickets, 5, "the ticket on paper")
        assert sim.tickets[0].text == "A001"
        wait_for(lambda: seen.written == ["A001"], 2)
        wait_for(lambda: seen.states == ["ok"], 2)
    finally:
        port.stop()


def test_a_printer_in_a_used_folder_numbers_on_and_keeps_the_earlier_tickets(tmp_path):
    """`hall-sim demo --data DIR` again: the new printer wrote ticket-0001 over the old one."""
    receipt = escpos.Receipt().line("A001").cut("partial").bytes()
    first = SimPrinter(tmp_path / "paper")
    first.feed(receipt)
    again = SimPrinter(tmp_path / "paper")
    again.feed(escpos.Receipt().line("B001").cut("partial").bytes())
    assert (tmp_path / "paper" / "ticket-0001.txt").read_text(encoding="utf-8") == "A001\n"
    assert (tmp_path / "paper" / "ticket-0002.txt").read_text(encoding="utf-8") == "B001\n"
    assert again.tickets[0].text == "B001"


def test_noise_on_the_status_line_is_skipped(sim):
    sim.status_noise = b"\xff\x00\x41\x81"  # none has the status byte's fixed bits
    port, seen = make_port(sim.port)
    try:
        wait_for(lambda: port.noise_bytes >= 12, 5, "noise seen")
        sim.set_status("paper-low")
        wait_for(lambda: seen.states[-1:] == ["paper_low"], 5)
        assert seen.states == ["ok", "paper_low"]
    finally:
        port.stop()


def test_offline_printer_then_back(sim):
    port, seen = make_port(sim.port)
    try:
        wait_for(lambda: seen.states == ["ok"], 5)
        sim.set_status("offline")
        wait_for(lambda: seen.states == ["ok", "offline"], 5)
        sim.set_status("ok")
        wait_for(lambda: seen.states == ["ok", "offline", "ok"], 5)
    finally:
        port.stop()


def test_unplugged_mid_ticket_then_plugged_back(sim, tmp_path):
    """A USB printer that vanishes: the job fails cleanly, the port comes back by itself."""
    port, seen = make_port(str(tmp_path / "printer"))
    try:
        wait_for(lambda: seen.states == ["ok"], 5)
        sim.unplug()
        port.submit("A002", b"x" * 64)
        wait_for(lambda: seen.failed == [("A002", "offline")], 5, "the failed job")
        wait_for(lambda: seen.states[-1] == "offline", 5)
        sim.plug()
        wait_for(lambda: seen.states[-1] == "ok", 5, "the printer back")
        port.submit("A003", escpos.Receipt().line("A003").cut("full").bytes())
        wait_for(lambda: [t.text for t in sim.tickets] == ["A003"], 5)
    finally:
        port.stop()


def test_a_surprise_from_the_port_fails_the_job_and_the_port_carries_on(sim):
    """pyserial's flush() raises termios.error (not an OSError) when a USB adapter vanishes
    mid-ticket; it once ended the port thread: no ticket was printed or failed after it."""

    class DrainFails:
        def __init__(self) -> None:
            self.inner = open_transport("serial", sim.port, 9600)

        def write(self, data: bytes) -> None:
            if data == b"doomed":
                raise termios.error(5, "Input/output error")
            self.inner.write(data)

        def read(self, size: int, timeout: float) -> bytes:
            return self.inner.read(size, timeout)

        def discard_input(self) -> None:
            self.inner.discard_input()

        def close(self) -> None:
            self.inner.close()

    seen = Recorder()
    port = PrinterPort(
        DrainFails,
        poll_s=60.0,
        timeout_s=0.5,
        on_status=seen.states.append,
        on_result=seen.result,
    )
    port.start()
    try:
        wait_for(lambda: seen.states == ["ok"], 5)
        port.submit("A001", b"doomed")
        wait_for(lambda: seen.failed == [("A001", "offline")], 5, "the job failed")
        port.submit("A002", escpos.Receipt().line("A002").cut("full").bytes())
        wait_for(lambda: seen.written == ["A002"], 5, "the next ticket printed")
        wait_for(lambda: [t.text for t in sim.tickets] == ["A002"], 5)
    finally:
        port.stop()


def test_absent_port_is_offline_not_a_crash(tmp_path):
    port, seen = make_port(str(tmp_path / "no-such-printer"))
    try:
        wait_for(lambda: seen.states == ["offline"], GRACE_S + 5)  # after the start-up grace
        port.submit("A001", b"data")
        wait_for(lambda: seen.failed == [("A001", "offline")], 5)
    finally:
        port.stop()


def test_usblp_file_transport(sim):
    """The /dev/usb/lp* transport: a plain device file, read back through select."""
    transport = FileTransport(sim.port)
    try:
        status, _ = read_status(transport, 0.3)
        assert status is not None
        assert status.word == "ok"
        transport.write(escpos.Receipt().line("B001").cut("partial").bytes())
        wait_for(lambda: sim.tickets, 5)
        assert sim.tickets[0].text == "B001"
    finally:
        transport.close()


def test_a_printer_that_never_answers_status_still_prints(sim, tmp_path):
    """status_queries = false: no DLE EOT is sent; the state comes from the port alone."""
    sim.set_status("offline")  # answers nothing...
    port, seen = make_port(str(tmp_path / "printer"), status_queries=False)
    try:
        wait_for(lambda: seen.states == ["ok"], 5)
        sim.set_status("ok")
        port.submit("A001", escpos.Receipt().line("A001").cut("full").bytes())
        wait_for(lambda: seen.unconfirmed == ["A001"], 5)  # sent; whether it came out is not known
        wait_for(lambda: sim.tickets, 5)
        assert sim.status_queries == 0
        sim.unplug()
        wait_for(lambda: seen.states == ["ok", "offline"], 5)
    finally:
        port.stop()


def test_one_lost_status_answer_is_not_an_outage(sim):
    """Issue 18: a single poll without an answer (0.5 s) reported the printer offline."""
    port, seen = make_port(sim.port)
    try:
        wait_for(lambda: seen.states == ["ok"], 5)
        polls = sim.status_queries
        sim.lose_answers = 1
        wait_for(lambda: sim.status_queries >= polls + 9, 10, "three more polls")
        assert seen.states == ["ok"]  # before: ["ok", "offline", "ok"]
        assert port.missed_answers == 1
    finally:
        port.stop()


def test_a_ticket_sent_to_a_printer_that_then_falls_silent_is_unconfirmed_not_failed(sim):
    """The printer took the ticket but answered nothing after it: whether it came out is not known."""
    port, seen = make_port(sim.port, poll_s=60.0)
    try:
        wait_for(lambda: seen.states == ["ok"], 5)
        sim.lose_answers = 3  # the poll after the ticket and both of its retries
        port.submit("A001", escpos.Receipt().line("A001").cut("full").bytes())
        wait_for(lambda: seen.unconfirmed == ["A001"], 5)
        assert seen.failed == [] and seen.written == []
        assert seen.states == ["ok", "offline"]
        wait_for(lambda: [t.text for t in sim.tickets] == ["A001"], 5)
    finally:
        port.stop()


def test_a_second_process_cannot_open_the_printers_port(sim):
    """A second opener (another daemon, selftest while the service runs) took the status answers
    meant for the daemon's driver: the printer flapped offline/ok (issue 18).  It is refused now."""
    first = open_transport("serial", sim.port, 9600)
    try:
        with pytest.raises(PortInUse, match="in use by another process"):
            open_transport("serial", sim.port, 9600)
        with pytest.raises(PortInUse):
            FileTransport(sim.port)
    finally:
        first.close()
    open_transport("serial", sim.port, 9600).close()  # free again once the first one closed it
