"""The playground in a real browser: Debian's Chromium driven by Playwright, against the real app on
127.0.0.1, a fake model and a real HTTP tool.

What a person does with it: types and sends, sees the answer stream in and the turn's timeline
(the filler, the bridge's tool with its duration, first and last token), barges in (the bridge then
closes the upstream), gives a token once per tab, sees which agent answered. Every page is
watched: no request leaves the bridge's origin, no script error, no console error.

One browser serves the whole module (launching one takes about a second), so the tests and their
fixtures run on the module's event loop. Set PLAYGROUND_SCREENSHOT=docs/playground.png to write
the README's screenshot from the tool-call test.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect

from tests.support.app import BridgeFactory, bridges
from tests.support.playground import ANSWER, weather_env, weather_model
from tests.support.tool_servers import WeatherToolServer
from tests.support.upstream import FakeUpstream

pytestmark = pytest.mark.asyncio(loop_scope="module")

CHROMIUM = "/usr/bin/chromium"  # Debian's package: .ci/run installs it; no browser is downloaded
HAVE_CHROMIUM = os.path.exists(CHROMIUM)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage"]
TOKEN = "play-tok-1234"


# -- the module's browser, and the usual fixtures on the module's loop -------------------------


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium package")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        await launched.close()


@pytest_asyncio.fixture(loop_scope="module")
async def fake_upstream() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream()
    await fake.start()
    yield fake
    await fake.close()


@pytest_asyncio.fixture(loop_scope="module")
async def tool_server() -> AsyncIterator[WeatherToolServer]:
    server = WeatherToolServer()
    await server.server.start_server()
    yield server
    await server.server.close()


@pytest_asyncio.fixture(loop_scope="module")
async def bridge(log_stream: io.StringIO) -> AsyncIterator[BridgeFactory]:
    """The real app on 127.0.0.1, as tests/conftest.py's `bridge` starts it (for this module's loop)."""
    async with bridges(log_stream) as make:
        yield make


class Watched:
    """A page and what it did: every request's URL, every script error and console error."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        page.on("console", self._console)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def check(self, origin: str, *, refused: int = 0) -> None:
        """Nothing left `origin`; no error but the `refused` 401s the browser itself reports."""
        assert self.requests and all(url.startswith(origin + "/") for url in self.requests), self.requests
        unauthorized = [e for e in self.errors if "status of 401" in e]
        assert len(unauthorized) == refused and len(self.errors) == refused, self.errors


@pytest_asyncio.fixture(loop_scope="module")
async def open_page(browser: Browser) -> AsyncIterator[Any]:
    """`await open_page(url)`: a new tab (its own sessionStorage) on `url`, watched."""
    context = await browser.new_context(viewport={"width": 1100, "height": 760})

    async def opened(url: str, *, init_script: str | None = None) -> Watched:
        page = await context.new_page()
        if init_script:
            await page.add_init_script(init_script)
        watched = Watched(page)
        response = await page.goto(url)
        assert response is not None and response.status == 200
        return watched

    yield opened
    await context.close()


def origin(client: TestClient) -> str:
    return str(client.make_url("")).rstrip("/")


async def say(page: Page, text: str) -> None:
    await page.get_by_role("textbox", name="Message").fill(text)
    await page.get_by_role("button", name="Send").click()


def timeline(page: Page) -> Any:
    return page.get_by_role("list", name="Timeline").last


def answer(page: Page) -> Any:
    return page.get_by_role("region", name="Answer").last


# -- the tests ---------------------------------------------------------------------------------


async def test_a_turn_streams_its_answer_and_draws_the_tool_in_its_timeline(bridge, fake_upstream, tool_server,
                                                                            tmp_path, open_page):
    weather_model(fake_upstream)
    client = await bridge(weather_env(fake_upstream, tool_server.url("/weather"), tmp_path))
    watched = await open_page(origin(client) + "/playground")
    page = watched.page
    await say(page, "What's the weather in Paris?")
    await expect(answer(page)).to_contain_text(ANSWER)
    await expect(timeline(page).get_by_role("listitem")).to_have_count(5)  # last token comes at the end
    rows = await timeline(page).get_by_role("listitem").all_inner_texts()
    labels = [re.sub(r"\s+", " ", row).strip() for row in rows]
    assert labels[0].startswith("+0 ms request sent")
    assert re.fullmatch(r"\+\d+ ms filler “One moment, let me check\.”", labels[1]), labels
    assert re.fullmatch(r"\+\d+ ms tool get_weather [\d.]+ ms · ok", labels[2]), labels
    assert re.fullmatch(r"\+\d+ ms first token", labels[3]) and re.fullmatch(r"\+\d+ ms last token", labels[4])
    times = [int(re.match(r"\+(\d+) ms", label).group(1)) for label in labels]  # type: ignore[union-attr]
    assert times == sorted(times)
    await expect(page.locator("#agent-name")).to_have_text("default")
    assert tool_server.bodies == [{"city": "Paris"}]
    if os.environ.get("PLAYGROUND_SCREENSHOT"):  # the README's picture: the turn and the box below it
        await page.set_viewport_size({"width": 1100, "height": 540})
        await page.screenshot(path=os.environ["PLAYGROUND_SCREENSHOT"])
    # the next turn resends the conversation as the page heard it, as a platform does
    first_answer = await answer(page).locator("p").inner_text()
    await say(page, "And tomorrow?")
    await expect(timeline(page).get_by_role("listitem")).to_have_count(5)
    turn_two = next(r.json()["messages"] for r in fake_upstream.requests
                    if r.json()["messages"][-1] == {"role": "user", "content": "And tomorrow?"})
    assert turn_two == [{"role": "user", "content": "What's the weather in Paris?"},
                        {"role": "assistant", "content": first_answer},
                        {"role": "user", "content": "And tomorrow?"}]
    watched.check(origin(client))


async def test_barge_in_stops_the_answer_and_the_bridge_closes_the_upstream(bridge, fake_upstream, open_page):
    fake_upstream.pause_midway(asyncio.Event())  # "first half", then nothing until the call is closed
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1"})
    watched = await open_page(origin(client) + "/playground")
    page = watched.page
    await say(page, "Tell me a long story")
    await expect(answer(page)).to_contain_text("first half")  # streamed: the rest is still held upstream
    barge = page.get_by_role("button", name="Barge in")
    await expect(barge).to_be_enabled()
    assert not fake_upstream.disconnected.is_set()
    await barge.click()
    await asyncio.wait_for(fake_upstream.disconnected.wait(), 5)
    await expect(timeline(page)).to_contain_text("barged in")
    await expect(barge).to_be_disabled()
    # what the caller heard before barging in stays in the conversation
    fake_upstream.handler = None
    await say(page, "Shorter, please")
    await expect(answer(page)).to_contain_text("Hello, world!")
    assert fake_upstream.last.json()["messages"] == [
        {"role": "user", "content": "Tell me a long story"}, {"role": "assistant", "content": "first half"},
        {"role": "user", "content": "Shorter, please"}]
    watched.check(origin(client))


async def test_a_token_is_asked_once_and_kept_for_the_tab(bridge, fake_upstream, open_page):
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "BRIDGE_TOKENS": TOKEN})
    watched = await open_page(origin(client) + "/playground")
    page = watched.page
    token = page.get_by_label(re.compile("needs a token"))
    await expect(token).to_be_visible()  # asked before anything is said
    await token.fill("wrong-token")
    await page.get_by_role("button", name="Use token").click()
    await expect(page.get_by_role("alert")).to_have_text("That token was not accepted.")
    await token.fill(TOKEN)
    await page.get_by_role("button", name="Use token").click()
    await expect(token).to_be_hidden()
    await say(page, "Hello")
    await expect(answer(page)).to_contain_text("Hello, world!")
    assert fake_upstream.last.headers.get("Authorization") != f"Bearer {TOKEN}"  # the token stays in the bridge
    await page.reload()  # the same tab keeps it
    await say(page, "Hello again")
    await expect(answer(page)).to_contain_text("Hello, world!")
    await expect(token).to_be_hidden()
    watched.check(origin(client), refused=2)  # the page's first look, and the wrong token
    other = await open_page(origin(client) + "/playground")  # another tab asks again
    await expect(other.page.get_by_label(re.compile("needs a token"))).to_be_visible()
    other.check(origin(client), refused=1)


async def test_the_token_chooses_the_agent_and_the_page_shows_which(bridge, fake_upstream, tmp_path, open_page):
    path = tmp_path / "agents.json"
    path.write_text(json.dumps({"agents": {
        "sales": {"OPENAI_BASE_URL": fake_upstream.url + "/v1", "BRIDGE_TOKENS": "sales-tok-1234"},
        "support": {"OPENAI_BASE_URL": fake_upstream.url + "/v1", "BRIDGE_TOKENS": "support-tok-5678"}}}))
    client = await bridge({"BRIDGE_AGENTS": str(path), "BRIDGE_TOKENS": TOKEN,
                           "OPENAI_BASE_URL": fake_upstream.url + "/v1"})
    for url, token, name in (("/playground", "sales-tok-1234", "sales"),
                             ("/agents/support/playground", "support-tok-5678", "support")):
        watched = await open_page(origin(client) + url)
        page = watched.page
        await page.get_by_label(re.compile("needs a token")).fill(token)
        await page.get_by_role("button", name="Use token").click()
        await say(page, "Who are you?")
        await expect(answer(page)).to_contain_text("Hello, world!")
        await expect(page.locator("#agent-name")).to_have_text(name)
        assert "support" not in await page.content() or name == "support"  # no other agent is named
        watched.check(origin(client), refused=1)
        assert any(u.startswith(origin(client) + url.removesuffix("playground") + "v1/chat/completions")
                   for u in watched.requests)


async def test_the_caller_can_speak_where_the_browser_listens_and_hear_the_answer(bridge, fake_upstream, open_page):
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1"})
    fake_upstream.reply = ["Hello there.", " How can I", " help you today?"]
    # the browser's voice is recorded rather than played (a headless browser has no speaker)
    spoken = "window.spoken = []; speechSynthesis.speak = (u) => window.spoken.push(u.text);"
    watched = await open_page(origin(client) + "/playground", init_script=spoken)
    page = watched.page
    await expect(page.get_by_role("button", name="Speak")).to_be_visible()  # Chromium has webkitSpeechRecognition
    await page.get_by_label("Read answers aloud").check()
    await say(page, "Hi")
    await expect(answer(page)).to_contain_text("How can I help you today?")
    await expect(timeline(page)).to_contain_text("last token")
    assert await page.evaluate("window.spoken") == ["Hello there.", "How can I help you today?"]  # by sentence
    watched.check(origin(client))
    deaf = "delete window.webkitSpeechRecognition; delete window.SpeechRecognition;"
    without = await open_page(origin(client) + "/playground", init_script=deaf)
    await expect(without.page.get_by_role("button", name="Send")).to_be_visible()
    await expect(without.page.get_by_role("button", name="Speak")).to_be_hidden()
    without.check(origin(client))


async def test_playground_off_the_page_is_absent(bridge, browser):
    client = await bridge({"PLAYGROUND": "off"})
    context = await browser.new_context()
    page = await context.new_page()
    for path in ("/playground", "/playground/app.js"):
        response = await page.goto(origin(client) + path)
        assert response is not None and response.status == 404
        assert json.loads(await response.text()) == {"error": f"No route for {path}."}
    await context.close()
