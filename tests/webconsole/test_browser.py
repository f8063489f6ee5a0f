"""The console in a real headless Chromium (Debian's chromium and chromium-driver, driven by selenium; `.ci/run`
installs them): log in, chat in the playground and watch the reply stream in, open its run and see its steps,
cancel a sleeping reminder, retry a failed run. Screenshots go to SCREENSHOT_DIR when it is set (that is how
docs/screenshots/ is made), else into the test's folder.

Selenium is synchronous: each scenario runs in a thread while the server, the worker and the services run on the
test's event loop."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from bot.clock import FakeClock
from sandbox.openai_server import StandInLLM, Step
from tests.webconsole.conftest import TOKEN

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail(
            "the browser tests need Debian's chromium and chromium-driver: apt-get install chromium chromium-driver"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console errors (and CSP refusals) are read
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--window-size=1400,900", f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def wait(driver: WebDriver, condition: Callable[[WebDriver], Any], timeout_s: float = 20) -> Any:
    # A live fragment may replace an element between finding and reading it: look again.
    ignored = (NoSuchElementException, StaleElementReferenceException)
    try:
        return WebDriverWait(driver, timeout_s, poll_frequency=0.05, ignored_exceptions=ignored).until(condition)
    except TimeoutException:
        # What the page showed when the wait gave up, for the failure's report.
        raise AssertionError(
            f"gave up at {driver.current_url}:\n{driver.find_element(By.TAG_NAME, 'body').text}"
        ) from None


def texts(driver: WebDriver, selector: str) -> list[str]:
    # In one script: a live update cannot replace the elements between finding and reading them.
    found = driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.innerText)", selector
    )
    return [str(text) for text in found]


def log_in(driver: WebDriver, console: str) -> None:
    driver.get(console + "/")
    assert driver.current_url.endswith("/login"), "a page without a session sends the browser to the login"
    assert "threadbot_session" not in {c["name"] for c in driver.get_cookies()}
    driver.find_element(By.NAME, "token").send_keys(TOKEN + Keys.ENTER)
    wait(driver, lambda d: d.find_elements(By.ID, "runs"))
    cookie = driver.get_cookie("threadbot_session")
    assert cookie is not None
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"


def html_of(driver: WebDriver, by: str, selector: str) -> str:
    return str(driver.find_element(by, selector).get_attribute("innerHTML") or "")


def click(driver: WebDriver, by: str, selector: str) -> None:
    """Click what `selector` finds, found again if a live update replaced it meanwhile."""

    def clicked(d: WebDriver) -> bool:
        try:
            d.find_element(by, selector).click()
        except (StaleElementReferenceException, NoSuchElementException):
            return False
        return True

    wait(driver, clicked)


def status(driver: WebDriver) -> str:
    def read(d: WebDriver) -> str | None:
        try:
            return str(d.find_element(By.CSS_SELECTOR, ".run-head .status").text)
        except (StaleElementReferenceException, NoSuchElementException):
            return None

    return str(wait(driver, read))


def say(driver: WebDriver, text: str) -> None:
    box = wait(driver, lambda d: d.find_element(By.ID, "text"))
    box.send_keys(text + Keys.ENTER)


def chat_and_inspect(driver: WebDriver, console: str, shots: Path) -> dict[str, Any]:
    log_in(driver, console)
    driver.get(console + "/playground?thread=browser-1")
    wait(driver, lambda d: d.find_element(By.ID, "log"))
    say(driver, "Hello from the browser")
    wait(driver, lambda d: "Hello from the browser" in texts(d, ".msg.user .body"))
    # Watch the reply as it is written: the bot's bubble grows by edits until the stand-in's last words.
    seen: list[str] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        current = texts(driver, ".msg.bot .body")
        if current and (not seen or seen[-1] != current[-1]):
            seen.append(current[-1])
        if seen and seen[-1].endswith("not a real model."):
            break
        time.sleep(0.03)
    run_link = wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, ".msg.user .run"))
    driver.save_screenshot(str(shots / "playground.png"))
    run_link.click()
    wait(driver, lambda d: "s-completed" in html_of(d, By.ID, "run"))
    steps = texts(driver, "table.steps tbody tr")
    driver.save_screenshot(str(shots / "run.png"))
    driver.get(console + "/")
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#runs tr[data-run]"))
    rows = texts(driver, "#runs tr[data-run]")
    return {"seen": seen, "steps": steps, "rows": rows}


async def test_chat_in_the_browser_and_watch_the_run(
    console: str, browser: WebDriver, shots: Path, stand_in: StandInLLM
) -> None:
    stand_in.token_delay = 0.04  # about a second of streaming, as a real model's reply arrives
    found = await asyncio.to_thread(chat_and_inspect, browser, console, shots)
    seen = found["seen"]
    assert 'You said: "Hello from the browser"' in seen[-1]
    assert len(seen) >= 3, f"the reply should appear as it streams, not at once: {seen}"
    assert all(seen[-1].startswith(partial) for partial in seen), seen
    assert any("chat_turn" in row or "completed" in row for row in found["rows"]), found["rows"]
    assert found["steps"], "the run page lists the run's steps"
    assert all("completed" in step for step in found["steps"]), found["steps"]
    for name in ("playground.png", "run.png"):
        assert (shots / name).stat().st_size > 10_000


def cancel_and_retry(driver: WebDriver, console: str, stand_in: StandInLLM, shots: Path) -> dict[str, str]:
    log_in(driver, console)
    driver.get(console + "/playground?thread=browser-ops")
    say(driver, "/remind in 2 hours check the deploy")
    wait(driver, lambda d: any("remind" in t.lower() for t in texts(d, ".msg.notice .body")))
    # The reminder is a sleeping run: cancel it from its run page.
    driver.get(console + "/schedules")
    link = wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, "a[href^='/runs/']"))
    driver.save_screenshot(str(shots / "schedules.png"))
    link.click()
    wait(driver, lambda d: "s-sleeping" in html_of(d, By.ID, "run"))
    click(driver, By.ID, "cancel")
    wait(driver, lambda d: "s-cancelled" in html_of(d, By.ID, "run"))
    cancelled = status(driver)

    # A turn whose model call is refused fails; once the model answers again, Retry completes it.
    stand_in.script(*[Step(status=400)] * 3)
    driver.get(console + "/playground?thread=browser-ops")
    say(driver, "this one fails")
    wait(driver, lambda d: any("this one fails" in t for t in texts(d, ".msg.user")) and d.find_elements(
        By.XPATH, "//div[contains(@class,'msg user')][.//div[text()='this one fails']]//a[@class='run']"))  # fmt: skip
    click(driver, By.XPATH, "//div[contains(@class,'msg user')][.//div[text()='this one fails']]//a")
    wait(driver, lambda d: d.find_elements(By.ID, "retry"))
    failed = status(driver)
    stand_in.reset()
    click(driver, By.ID, "retry")
    wait(driver, lambda d: "s-completed" in html_of(d, By.CSS_SELECTOR, ".run-head"))
    after = status(driver)
    driver.get(console + "/")
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#runs tr[data-run]")) >= 2)
    driver.save_screenshot(str(shots / "dashboard.png"))
    return {"cancelled": cancelled, "failed": failed, "after": after}


async def test_cancel_a_sleeping_reminder_and_retry_a_failed_run(
    console: str, browser: WebDriver, shots: Path, stand_in: StandInLLM
) -> None:
    found = await asyncio.to_thread(cancel_and_retry, browser, console, stand_in, shots)
    assert found == {"cancelled": "cancelled", "failed": "failed", "after": "completed"}
    assert (shots / "dashboard.png").stat().st_size > 10_000


def refused(driver: WebDriver, console: str) -> dict[str, str]:
    driver.get(console + "/runs/1")
    at_login = driver.current_url
    driver.get(console + "/login?token=not-the-token")
    return {"url": at_login, "text": driver.find_element(By.TAG_NAME, "body").text}


async def test_refused_without_login(console: str, browser: WebDriver) -> None:
    found = await asyncio.to_thread(refused, browser, console)
    assert found["url"].endswith("/login?next=/runs/1")
    assert "not this console's" in found["text"]


def every_page(driver: WebDriver, console: str) -> dict[str, Any]:
    log_in(driver, console)
    driver.get(console + "/playground?thread=browser-pages")
    say(driver, "a message for the threads page")
    wait(driver, lambda d: any(t.endswith("not a real model.") for t in texts(d, ".msg.bot .body")))
    headings: dict[str, str] = {}
    for path in ("/", "/events", "/schedules", "/threads", "/media", "/chains", "/playground?thread=browser-pages"):
        driver.get(console + path)
        headings[path] = driver.find_element(By.TAG_NAME, "main").text
    driver.get(console + "/threads")
    click(driver, By.CSS_SELECTOR, "a[href^='/threads/']")
    wait(driver, lambda d: "a message for the threads page" in d.find_element(By.TAG_NAME, "main").text)
    headings["thread"] = driver.find_element(By.TAG_NAME, "main").text
    assert isinstance(driver, webdriver.Chrome)
    problems = [entry["message"] for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]
    return {"headings": headings, "problems": problems}


async def test_every_page_renders_with_no_script_errors(console: str, browser: WebDriver) -> None:
    found = await asyncio.to_thread(every_page, browser, console)
    headings = found["headings"]
    assert "Runs" in headings["/"]
    assert "Events" in headings["/events"]
    assert "Recurring" in headings["/schedules"]
    assert "browser-pages" in headings["/threads"]
    assert "No media." in headings["/media"]
    assert "media-digest" in headings["/chains"]
    assert "a message for the threads page" in headings["/playground?thread=browser-pages"]  # the stream replayed
    assert "completed" in headings["thread"]
    assert found["problems"] == []


def upload_and_reminder(driver: WebDriver, console: str, notes: Path, clock: FakeClock, shots: Path) -> list[str]:
    log_in(driver, console)
    driver.get(console + "/playground?thread=browser-media")
    wait(driver, lambda d: d.find_element(By.ID, "log"))
    driver.find_element(By.ID, "file").send_keys(str(notes))
    say(driver, "what was decided?")
    wait(driver, lambda d: any("notes.txt: digest below" in t for t in texts(d, ".msg.bot .body")), timeout_s=40)
    say(driver, "/remind in 2 hours water the plants")
    wait(driver, lambda d: any("water the plants" in t for t in texts(d, ".msg.notice .body")))
    clock.advance(timedelta(hours=2, minutes=1))  # the worker's sweeper finds it due: it fires into the open page
    wait(driver, lambda d: any("water the plants" in t for t in texts(d, ".msg.bot .body")), timeout_s=30)
    driver.save_screenshot(str(shots / "playground-media.png"))
    return texts(driver, ".msg.bot .body")


async def test_a_file_and_a_reminder_in_the_playground(
    console: str, browser: WebDriver, shots: Path, clock: FakeClock, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("Ada: the beta ships on Friday.\nLin: budget review next week.\n")
    bot_posts = await asyncio.to_thread(upload_and_reminder, browser, console, notes, clock, shots)
    assert any(post.startswith("✅ notes.txt: digest below") for post in bot_posts), bot_posts
    assert any("water the plants" in post for post in bot_posts), bot_posts
