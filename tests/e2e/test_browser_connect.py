"""A user connects Spotify in a real browser (Debian's chromium, driven by selenium through
/usr/bin/chromedriver), end to end: two `spotify-sync serve` processes, a worker process, the
emulator as a server, real PostgreSQL and Redis.

The connect page is opened on one API process and Spotify sends the browser back to the other
(API_REDIRECT_URI names it): the tokens are stored once. A screenshot of every page goes to the
folder this test prints (under pytest's basetemp). Never skipped: without chromium it fails.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import redis

from pipeline.store.connections import load_tokens
from shared.crypto import TokenCipher
from tests.e2e.api_harness import Server
from tests.e2e.connect_harness import (
    ApiPorts,
    assert_nowhere,
    code_exchanges,
    connect_env,
    connection_rows,
    library_jobs,
    query_of,
    redis_verifiers,
)
from tests.e2e.pipeline_harness import Workers, emulator, wait_until  # noqa: F401 - a fixture

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
                "--window-size=1000,800")


@pytest.fixture
def browser(tmp_path) -> Iterator:
    assert Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(), (
        "the browser test needs Debian's chromium and its driver: apt-get install -y chromium chromium-driver")
    os.environ["SE_OFFLINE"] = "1"  # never let Selenium Manager download a browser or a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROME_FLAGS, f"--user-data-dir={tmp_path / 'chrome-profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # to see the callback's URL
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def shots(tmp_path_factory) -> Path:
    folder = tmp_path_factory.getbasetemp() / "browser-connect-screenshots"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    print(f"\nscreenshots: {folder}")
    return folder


def element(driver, element_id: str, timeout_s: float = 15):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout_s).until(lambda d: d.find_element(By.ID, element_id))


def sync_status_is(driver, wanted: str, timeout_s: float) -> None:
    """Wait, through the page's own reloads, until the library sync shows `wanted`."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def shown(d) -> bool:
        try:
            return d.find_element(By.ID, "sync-status").get_attribute("data-status") == wanted
        except (NoSuchElementException, StaleElementReferenceException):
            return False  # between two reloads

    WebDriverWait(driver, timeout_s, ignored_exceptions=(StaleElementReferenceException,)).until(shown)


def visited_urls(driver) -> list[str]:
    """Every URL the browser requested so far (redirects included), from chrome's performance log."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def connect_link(server: Server, user_id: str, on: Server) -> str:
    """A signed connect-page link made with an API token, pointed at the `on` process."""
    response = server.http.post(f"/v1/connections/{user_id}/connect-link")
    assert response.status_code == 200, response.text
    link = urlsplit(response.json()["url"])
    return f"{on.base_url}{link.path}?{link.query}"


def test_a_user_connects_spotify_in_the_browser(browser, shots, settings, emulator, clean_db, engine,  # noqa: F811
                                                redis_url):
    emulator.reset(app_names={settings.spotify_client_id: "spotify-sync"})
    ports = ApiPorts(2)
    env = connect_env(settings, emulator, ports)
    spotify_user = f"listener-{secrets.token_hex(3)}"
    store = redis.Redis.from_url(redis_url)
    with (Server(env, port=ports.ports[0]) as first, Server(env, port=ports.ports[1]) as second,
          Workers(env, processes=1, threads=2) as workers):
        workers.wait_ready()
        # The connect page, opened on the first API process.
        browser.get(connect_link(first, "user-1", on=first))
        assert element(browser, "connect").text == "Connect Spotify"
        assert element(browser, "user").text == "user-1"
        browser.save_screenshot(str(shots / "1-connect-page.png"))

        # Spotify's consent page (the emulator's), with our app's scopes.
        element(browser, "connect").click()
        element(browser, "agree")
        assert browser.current_url.startswith(emulator.base_url + "/authorize?")
        assert element(browser, "app-name").text == "spotify-sync"
        from selenium.webdriver.common.by import By

        asked = {li.get_attribute("data-scope") for li in browser.find_elements(By.CSS_SELECTOR, "#scopes li")}
        assert asked == {"user-library-read", "user-read-private", "user-read-email"}
        verifiers = redis_verifiers(store, settings)
        user_field = element(browser, "user")
        user_field.clear()
        user_field.send_keys(spotify_user)
        browser.save_screenshot(str(shots / "2-consent-page.png"))

        # Agree: Spotify sends the browser to the second process, which stores the tokens and shows
        # the connected page; the library sync's progress refreshes itself until it is done.
        element(browser, "agree").click()
        assert element(browser, "connected-as").text == spotify_user
        assert browser.current_url.startswith(second.base_url + "/connect?")
        assert query_of(browser.current_url)["connected"] == "1"
        sync_status_is(browser, "completed", timeout_s=60)
        assert int(element(browser, "sync-tracks").text) == 200  # the emulator's default library
        browser.save_screenshot(str(shots / "3-connected-page.png"))

        rows = connection_rows(engine)
        assert [(r["userId"], r["spotifyUserId"]) for r in rows] == [("user-1", spotify_user)]
        assert code_exchanges(emulator, settings.spotify_client_id) == 1
        assert [j["status"] for j in library_jobs(engine, "user-1")] == ["completed"]
        callback = next(u for u in visited_urls(browser) if "/auth/spotify/callback?" in u)
        assert callback.startswith(second.base_url)

        # Another user cancels on the consent page: the refusal page, with the reason, HTTP 400.
        browser.get(connect_link(first, "user-2", on=first))
        element(browser, "connect").click()
        element(browser, "cancel").click()
        assert element(browser, "refused").text == "Spotify is not connected"
        assert element(browser, "reason").get_attribute("data-reason") == "access_denied"
        browser.save_screenshot(str(shots / "4-refusal-page.png"))
        assert httpx.get(browser.current_url).status_code == 400
        assert [r["userId"] for r in connection_rows(engine)] == ["user-1"]

        # An expired or forged link shows nothing of the user.
        forged = connect_link(first, "user-1", on=first).replace("sig=", "sig=0")
        answer = httpx.get(forged)
        assert answer.status_code == 403 and spotify_user not in answer.text

        tokens = load_tokens(engine, TokenCipher(settings.spotify_token_keys), "user-1")
        assert tokens is not None and tokens.refresh_token
        logs = first.log() + second.log()
        assert "GET /auth/spotify/callback 303" in second.log()
        assert_nowhere({"code": query_of(callback)["code"], "state": query_of(callback)["state"],
                        "verifier": verifiers[0], "access token": tokens.access_token,
                        "refresh token": tokens.refresh_token}, logs, workers.output())
    store.close()
    for name in ("1-connect-page", "2-consent-page", "3-connected-page", "4-refusal-page"):
        assert (shots / f"{name}.png").stat().st_size > 5_000, name
