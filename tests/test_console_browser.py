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
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    def click() -> bool:
        try:
            driver.find_element(By.ID, element_id).click()
        except (StaleElementReferenceException, NoSuchElementException):
            return False
        return True

    wait_for(click, 20, f"button {element_id}")
