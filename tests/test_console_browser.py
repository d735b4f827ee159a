"""The staff console in a real browser: Debian's headless Chromium driven by selenium (nothing
downloaded at test time). ``HALL_UPDATE_DOCS=1`` saves each page as docs/img/console-*.png."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from console_support import PASSWORDS, add_accounts, console_overrides, console_url
from support import wait_for

CHROMEDRIVER = "/usr/bin/chromedriver"
DOCS_IMG = Path(__file__).resolve().parents[1] / "docs" / "img"

pytestmark = pytest.mark.skipif(
    not (Path(CHROMEDRIVER).exists() and shutil.which("chromium")),
    reason="chromium and chromium-driver are not installed (bash scripts/setup.sh installs them)",
)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or ""
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver, name: str) -> None:
    if os.environ.get("HALL_UPDATE_DOCS") == "1":
        DOCS_IMG.mkdir(exist_ok=True)
        driver.save_screenshot(str(DOCS_IMG / f"console-{name}.png"))


def test_log_in_call_the_next_ticket_and_see_the_screen_show_it(make_hall, browser):
    from selenium.webdriver.common.by import By

    hall = make_hall(["commands", "tickets", "display", "console"], {**console_overrides(),
                     "display": {"enabled": True, "device": "dummy"}})  # fmt: skip
    add_accounts(hall, "w1", "sup")
    tickets = hall.feature("tickets")
    for category in ("A", "A", "B"):
        hall.on_core(lambda c=category: tickets.issue(c))
    url = console_url(hall)
    browser.get(url + "login")
    shot(browser, "login")
    browser.find_element(By.ID, "user").send_keys("w1")
    browser.find_element(By.ID, "password").send_keys(PASSWORDS["w1"])
    browser.find_element(By.ID, "login").click()
    wait_for(
        lambda: browser.current_url.endswith("/window/1"),
        20,
        f"the window page ({browser.current_url} {browser.page_source[:600]})",
    )
    press(browser, "btn-call")
    wait_for(lambda: "已呼叫 A001" in browser.page_source, 20, "the call's message")
    display = hall.feature("display")
    wait_for(lambda: "A001" in str(hall.on_core(display.status)["text"]), 20, "A001 on the LED screen")
    shot(browser, "window")
    press(browser, "btn-finish")
    wait_for(lambda: "已办结 A001" in browser.page_source, 20, "the finish's message")
    browser.get(url + "today")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#chart svg"), 20, "the chart")
    shot(browser, "today")
    browser.get(url + "device")
    wait_for(lambda: browser.find_elements(By.ID, "components"), 20, "the device page")
    shot(browser, "device")
    audit = hall.data("audit.command")
    assert [(a["name"], a["issuer"], a["ok"]) for a in audit] == [
        ("queue.call", "console:w1", True),
        ("queue.finish", "console:w1", True),
    ]


def press(driver, element_id: str) -> None:
    """Click a button of the live part, which the event stream may replace at any moment."""
    from selenium.common.exceptions import (
        ElementNotInteractableException,
        NoSuchElementException,
        StaleElementReferenceException,
    )
    from selenium.webdriver.common.by import By

    def click() -> bool:
        try:
            driver.find_element(By.ID, element_id).click()
        except (StaleElementReferenceException, NoSuchElementException, ElementNotInteractableException):
            return False
        return True

    wait_for(click, 20, f"button {element_id}")


def test_locker_staff_inspect_a_returned_tool_and_write_off_a_missing_one(make_hall, browser, tmp_path):
    from locker_hall import LockerHall, locker_config
    from selenium.webdriver.common.by import By
    from test_locker_staff import return_tool

    overrides = {**locker_config(tmp_path), "console": console_overrides()["console"]}
    hall = make_hall(["commands", "locker", "console"], overrides, rig=LockerHall)
    add_accounts(hall, "lk")
    hall.checkout("W1", 1)
    return_tool(hall, "W1", 1)
    url = console_url(hall)
    browser.get(url + "login")
    browser.find_element(By.ID, "user").send_keys("lk")
    browser.find_element(By.ID, "password").send_keys(PASSWORDS["lk"])
    browser.find_element(By.ID, "login").click()
    wait_for(lambda: browser.current_url.endswith("/locker"), 20, "the locker page")
    wait_for(lambda: "待检查" in browser.page_source, 20, "the returned hammer awaiting inspection")
    note = "<b>刃口完好</b>"
    type_into(browser, "note-T-hammer-01", note)
    press(browser, "inspect-ok-T-hammer-01")
    wait_for(lambda: "已检查 T-hammer-01" in browser.page_source, 20, "the inspection's message")
    # The live update may be replacing the row as it is read: text_of reads it again then.
    wait_for(lambda: "在库" in text_of(browser, "tool-T-hammer-01"), 20, "the hammer back in stock")
    press(browser, "write_off-T-drill-01")  # found missing from stock
    wait_for(lambda: "已报损 T-drill-01" in browser.page_source, 20, "the write-off's message")
    wait_for(lambda: "已报损" in text_of(browser, "tool-T-drill-01"), 20, "the drill written off")
    shot(browser, "locker")
    audit = [(a["name"], a["issuer"], a["ok"]) for a in hall.data("audit.command")]
    assert audit == [("locker.inspect", "console:lk", True), ("locker.write_off", "console:lk", True)]


def type_into(driver, element_id: str, text: str) -> None:
    from selenium.common.exceptions import (
        ElementNotInteractableException,
        NoSuchElementException,
        StaleElementReferenceException,
    )
    from selenium.webdriver.common.by import By

    def typed() -> bool:
        try:
            driver.find_element(By.ID, element_id).send_keys(text)
        except (StaleElementReferenceException, NoSuchElementException, ElementNotInteractableException):
            return False
        return True

    wait_for(typed, 20, f"field {element_id}")


def log_in(driver, url: str, user: str, page: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url + "login")
    driver.find_element(By.ID, "user").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(PASSWORDS[user])
    driver.find_element(By.ID, "login").click()
    wait_for(lambda: driver.current_url.endswith(page), 20, f"{page} ({driver.current_url})")


def transfer(driver, target: str) -> None:
    """Choose ``target`` in the transfer list and press 转移 (a focused list is not replaced live)."""
    from selenium.common.exceptions import (
        ElementNotInteractableException,
        NoSuchElementException,
        StaleElementReferenceException,
    )
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    def chosen_and_pressed() -> bool:
        try:
            Select(driver.find_element(By.ID, "transfer-target")).select_by_value(target)
            driver.find_element(By.ID, "btn-transfer").click()
        except (StaleElementReferenceException, NoSuchElementException, ElementNotInteractableException):
            return False
        return True

    wait_for(chosen_and_pressed, 20, f"the transfer to {target}")


def text_of(driver, element_id: str) -> str:
    from selenium.common.exceptions import (
        ElementNotInteractableException,
        NoSuchElementException,
        StaleElementReferenceException,
    )
    from selenium.webdriver.common.by import By

    try:
        return str(driver.find_element(By.ID, element_id).text)
    except (StaleElementReferenceException, NoSuchElementException, ElementNotInteractableException):
        return ""


def test_transfer_from_the_window_page_lands_at_the_other_window_then_the_category(make_hall, browser):
    hall = make_hall(["commands", "tickets", "console"], console_overrides())
    add_accounts(hall, "sup")
    tickets = hall.feature("tickets")
    for category in ("A", "B"):
        hall.on_core(lambda c=category: tickets.issue(c))
    url = console_url(hall)
    log_in(browser, url, "sup", "/today")
    browser.get(url + "window/1")
    press(browser, "btn-call")
    wait_for(lambda: "已呼叫 A001" in browser.page_source, 20, "the call's message")
    transfer(browser, "window:2")
    wait_for(lambda: "已转移 A001" in browser.page_source, 20, "the transfer's message")
    wait_for(lambda: text_of(browser, "serving") == "—", 20, "window 1 serving nobody")
    browser.get(url + "window/2")
    wait_for(lambda: text_of(browser, "next") == "A001", 20, "A001 next at window 2")
    press(browser, "btn-call")
    wait_for(lambda: "已呼叫 A001" in browser.page_source, 20, "window 2 calling A001")
    transfer(browser, "category:B")
    wait_for(lambda: "已转移 A001" in browser.page_source, 20, "the second transfer's message")
    b_name = next(c.name for c in hall.feature("console").settings.queue.categories if c.code == "B")
    wait_for(lambda: "A001" in waiting_row(browser, b_name), 20, "A001 waiting among the B tickets")
    moved = [(d["ticket"], d["window"], d.get("to_window"), d.get("to_category"))
             for d in hall.data("ticket.transferred")]  # fmt: skip
    assert moved == [("A001", 1, 2, None), ("A001", 2, None, "B")], moved
    audit = [(a["name"], a["issuer"], a["ok"]) for a in hall.data("audit.command")]
    assert audit.count(("queue.transfer", "console:sup", True)) == 2, audit


def waiting_row(driver, name: str) -> str:
    """The text of the waiting table's row for the category called ``name``."""
    from selenium.common.exceptions import (
        ElementNotInteractableException,
        NoSuchElementException,
        StaleElementReferenceException,
    )
    from selenium.webdriver.common.by import By

    try:
        rows = [str(r.text) for r in driver.find_elements(By.CSS_SELECTOR, "#waiting tr")]
    except (StaleElementReferenceException, NoSuchElementException, ElementNotInteractableException):
        return ""
    return " ".join(row for row in rows if row.startswith(name))


RATE_PINS = {5: 7, 4: 8, 3: 9, 2: 10, 1: 11}  # window 1's rating keypad (as tests/test_tickets_caller.py)


def test_finish_in_the_browser_then_the_worker_rates_and_the_today_page_counts_it(make_hall, browser, pins):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    keypad = {f"rate{level}_pin": pin for level, pin in RATE_PINS.items()}
    queue = {"enabled": True, "rating_s": 60.0, "windows": [{"number": 1, **keypad}, {"number": 2}]}
    hall = make_hall(["commands", "tickets", "console"], {**console_overrides(), "queue": queue})
    add_accounts(hall, "w1")
    tickets = hall.feature("tickets")
    hall.on_core(lambda: tickets.issue("A"))
    url = console_url(hall)
    log_in(browser, url, "w1", "/window/1")
    press(browser, "btn-call")
    wait_for(lambda: "已呼叫 A001" in browser.page_source, 20, "the call's message")
    press(browser, "btn-finish")
    wait_for(lambda: "已办结 A001，请群众评价" in browser.page_source, 20, "the finish's message")
    wait_for(lambda: hall.on_core(lambda: 1 in tickets.awaiting_rating), 20, "the keypad waiting")
    pins.pin(RATE_PINS[4]).drive_low()  # the worker presses 满意 on the rating keypad
    pins.pin(RATE_PINS[4]).drive_high()
    rated = hall.wait_event("ticket.rated", timeout=20)
    assert (rated[0]["ticket"], rated[0]["level"]) == ("A001", 4)
    browser.get(url + "today")

    def window_one_ratings() -> str:
        try:  # the live part may be replaced between finding the cell and reading it
            rows = browser.find_elements(By.XPATH, "//tr[td[1]='1号']/td[5]")
            return str(rows[0].text) if rows else ""
        except StaleElementReferenceException:
            return ""

    wait_for(lambda: window_one_ratings() == "0 / 1 / 0 / 0 / 0 · 0", 20, "window 1's 满意 on the today page")
