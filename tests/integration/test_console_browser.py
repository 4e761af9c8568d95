"""The console in a real browser: Debian's headless Chromium driven by Selenium through /usr/bin/chromedriver.

Sign in with a token, search by control id, open the detail page, see the
deliveries (one dead-lettered), replay the dead letter from the page and see
the dead-letter counter move. Screenshots of the pages go to docs/console/
(shown in docs/console.md). No browser is downloaded: Selenium Manager is not
used, the driver is given by path.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from carehub.core.principal import OPS_READ, OPS_WRITE, PHI_READ
from carehub.demo_receivers import DemoRecipient
from carehub.hub import Hub
from tests.authkit import Issuer
from tests.conftest import REPO
from tests.integration.conftest import eventually
from tests.integration.test_console import dead_lettered_admit

pytestmark = pytest.mark.integration
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SHOTS = REPO / "docs" / "console"


@pytest.fixture
async def browser() -> AsyncIterator[WebDriver]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("apt-get install -y chromium chromium-driver (.ci/run does)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,1000"):  # fmt: skip
        options.add_argument(flag)
    driver = await asyncio.to_thread(webdriver.Chrome, options=options, service=Service(str(CHROMEDRIVER)))
    yield driver
    await asyncio.to_thread(driver.quit)


async def run(fn: Callable[..., Any], *args: Any) -> Any:
    """A blocking WebDriver call off the event loop (the hub serves the browser from this loop)."""
    return await asyncio.to_thread(fn, *args)


async def text_of(driver: WebDriver, element_id: str, timeout_s: float = 30.0) -> str:
    """The element's text, once the page that has it is there.

    A click on a link or a form may still be loading: the element found may
    belong to the page being left and go stale before its text is read, so the
    lookup and the read are retried together until they succeed on one page.
    """

    def find() -> str:
        wait = WebDriverWait(
            driver, timeout_s, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
        )
        return str(wait.until(lambda d: d.find_element(By.ID, element_id).text))

    return str(await run(find))


async def url_becomes(driver: WebDriver, prefix: str, timeout_s: float = 30.0) -> bool:
    """The page the browser ends up on after a form post (the hub answers it from this event loop)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if str(await run(lambda: driver.current_url)).startswith(prefix):
            return True
        await asyncio.sleep(0.1)
    return False


async def shot(driver: WebDriver, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    assert await run(driver.save_screenshot, str(SHOTS / f"{name}.png"))


async def test_sign_in_search_open_detail_replay_the_dead_letter_and_see_the_counter_move(
    hub: Hub, issuer: Issuer, recipients: dict[str, DemoRecipient], browser: WebDriver
) -> None:
    started = time.monotonic()
    await dead_lettered_admit(hub, recipients)
    base = f"http://127.0.0.1:{hub.http_port}"

    await run(browser.get, f"{base}/console")
    assert browser.current_url == f"{base}/console/signin", "no session: the sign-in page"
    token = issuer.token(OPS_READ, OPS_WRITE, PHI_READ, sub="analyst-browser", lifetime_s=600)
    await run(lambda: browser.find_element(By.ID, "token").send_keys(token))
    await shot(browser, "signin")
    await run(lambda: browser.find_element(By.ID, "signin").click())
    assert await text_of(browser, "dlq-size") == "1"
    assert "analyst-browser" in await text_of(browser, "who")

    await run(lambda: browser.find_element(By.ID, "nav-messages").click())
    assert await url_becomes(browser, f"{base}/console/messages"), "the nav link opens the message browser"
    await run(lambda: browser.find_element(By.ID, "q").send_keys("RGH0002"))
    await run(lambda: browser.find_element(By.ID, "search-button").click())
    assert await url_becomes(browser, f"{base}/console/messages?q=RGH0002"), "the search is a GET on the browser"
    results = await text_of(browser, "results")
    assert "RGH0002" in results and "dead-lettered" in results
    await shot(browser, "messages")

    await run(lambda: browser.find_element(By.CLASS_NAME, "message-link").click())
    assert await text_of(browser, "control-id") == "RGH0002"
    deliveries = await text_of(browser, "deliveries")
    assert "payer-acme" in deliveries and "delivered" in deliveries
    assert "pcp-riverside" in deliveries and "parked delivery-rejected" in deliveries
    assert "dead-lettered delivery-rejected" in await text_of(browser, "why")
    await shot(browser, "detail")

    before = len(recipients["pcp-riverside"].received)
    await run(lambda: browser.find_element(By.CSS_SELECTOR, "#deliveries button.replay").click())
    assert await url_becomes(browser, f"{base}/console?replayed=1"), "the replay redirects to the dashboard"
    await eventually(lambda: len(recipients["pcp-riverside"].received) > before, timeout_s=60)
    await run(browser.refresh)
    assert await text_of(browser, "dlq-size") == "0", "the replayed dead letter left the queue"
    assert "pcp-riverside" in await text_of(browser, "per-recipient")
    await shot(browser, "dashboard")
    print(f"browser flow took {time.monotonic() - started:.1f}s")
