"""docs/platforms/, kept honest: each page's request is its fixture's documented one, and the app answers it.

Each platform page in docs/platforms/ shows its platform's request as a ```` ```sh curl fixture=<name> ````
block (the convention of tests/support/docs.py). Its path, headers and JSON body (or form fields)
are read out of the shell command and compared with the fixture in tests/fixtures/platforms/ (the
operator's key written as the docs' token, `change-me-0123456789`), then sent as written through
the app to the strict OpenAI upstream, as tests/test_platforms.py sends the fixtures (the curl
itself runs in tests/test_docs_examples.py). The `Logged:` and `Dropped:` lines under each
example are checked against the request's log line; the fixture's sources against its section in
the fixtures' README, which the page links; and the index's table (docs/platforms.md) against
bridge/inbound/platforms.py.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

import pytest

from bridge.inbound.platforms import PLATFORMS
from bridge.inbound.sockets.relay import SETUP_IDS
from bridge.inbound.sockets.retell import CALL_IDS
from tests.support.app import log_lines
from tests.support.docs import ROOT, Block, blocks, labelled_names
from tests.support.docs import TOKEN as PLACEHOLDER
from tests.support.platform_fixtures import ANSWER, CHAT_FIXTURES, TOKEN, load, path_for, with_token
from tests.support.strict_openai import strict_openai
from tests.support.upstream import FakeUpstream

PAGES = sorted((ROOT / "docs" / "platforms").glob("*.md"))
INDEX = (ROOT / "docs" / "platforms.md").read_text(encoding="utf-8")
FIXTURE_NOTES = ROOT / "tests" / "fixtures" / "platforms"
BASE = "http://localhost:8080"
# What each example must be logged as: an expectation of this test, not read from the guide.
EXPECTED_PLATFORM = {
    "ims_form": "alibaba_ims", "ims_openai": "alibaba_ims", "agora": "agora", "agora_minimal": "openai",
    "tencent_trtc": "tencent_trtc", "volcengine": "volcengine", "vapi": "vapi", "elevenlabs": "elevenlabs",
    "livekit": "livekit", "pipecat": "openai", "aiccs": "alibaba_aiccs", "did": "d-id",
}
FORM_IDS = {"instance_id", "user_data"}  # what the form route logs from ExtendData
ID_NAMES = {name for platform in PLATFORMS for name, _ in platform.ids} | FORM_IDS
SOCKET_IDS = {"twilio": set(SETUP_IDS), "telnyx": set(SETUP_IDS), "retell": set(CALL_IDS)}
SHOWN_WITH = {"ims_call_control": "ims_form"}  # fixtures without an example: whose page links their notes


@dataclass
class Example:
    name: str
    url: str
    headers: dict[str, str]
    body: str | None  # the heredoc, as curl sends it
    form: dict[str, str] | None  # the --data-urlencode fields
    page: Path  # the platform's page
    after: str  # the page's text from the example to the next block


def parse_curl(block: str) -> tuple[str, dict[str, str], str | None, dict[str, str] | None]:
    """URL, headers, heredoc body and form fields of one curl command; anything else is an error."""
    command, heredoc, rest = block.partition(" <<'JSON'\n")
    body = None
    if heredoc:
        assert rest.endswith("\nJSON"), "the heredoc must end with a JSON line"
        body = rest.removesuffix("\nJSON") + "\n"
    words = shlex.split(command.replace("\\\n", " "))
    assert words[0] == "curl", words
    url, headers, form = "", {}, {}
    args = iter(words[1:])
    for word in args:
        if word == "-N":
            continue
        if word == "-H":
            name, _, value = next(args).partition(": ")
            assert name.lower() not in {h.lower() for h in headers}, f"header {name} given twice"
            headers[name] = value
        elif word == "--data-binary":
            assert next(args) == "@-" and body is not None, "--data-binary must read the heredoc"
        elif word == "--data-urlencode":
            name, _, value = next(args).partition("=")
            assert name not in form, f"form field {name} given twice"
            form[name] = value
        elif word.startswith("http") and not url:
            url = word
        else:
            raise AssertionError(f"unexpected curl argument {word!r}")
    assert (body is None) != (not form), "an example sends a JSON body or a form, not both"
    return url, headers, body, form or None


def curl_blocks() -> list[Block]:
    return [b for page in PAGES for b in blocks(page) if b.kind == "sh curl" and "fixture" in b.options]


def examples() -> dict[str, Example]:
    found: dict[str, Example] = {}
    for block in curl_blocks():
        name = block.options["fixture"]
        assert name not in found, f"two examples for {name}"
        url, headers, body, form = parse_curl(block.text.rstrip("\n"))
        after = block.after + (block.next.after if block.next is not None and block.next.kind == "json output" else "")
        found[name] = Example(name, url, headers, body, form, block.doc, after)
    return found


EXAMPLES = examples()


def header_matches(fixture_value: str, doc_value: str) -> bool:
    """The guide's value is the fixture's, a `<...>` placeholder standing for any value."""
    pattern = "".join(".+" if part.startswith("<") else re.escape(part)
                      for part in re.split(r"(<[^>]*>)", fixture_value) if part)
    return re.fullmatch(pattern, doc_value) is not None


@pytest.fixture
def bridge_defaults() -> dict[str, str]:
    return {"BRIDGE_TOKENS": TOKEN}


def test_every_fixture_has_its_example_on_a_page() -> None:
    assert len(curl_blocks()) == len(EXAMPLES)
    assert set(EXAMPLES) == {*CHAT_FIXTURES, "ims_form"}
    assert set(EXPECTED_PLATFORM) == set(EXAMPLES)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_the_example_is_the_fixtures_documented_request(name: str) -> None:
    example, fixture = EXAMPLES[name], load(name)
    url = urlsplit(example.url)
    assert f"{url.scheme}://{url.netloc}" == BASE and not url.query
    if example.form is not None:
        assert url.path == "/"
        assert example.form == {**fixture["form"], "Token": PLACEHOLDER}
    else:
        assert url.path == path_for(fixture)  # what the platform calls, per its appends_path
        assert json.loads(example.body) == fixture["body"]
    expected = with_token(fixture["headers"]) if example.form is None else fixture["headers"]
    assert {h.lower() for h in example.headers} == {h.lower() for h in expected}
    fixture_values = {h.lower(): v for h, v in fixture["headers"].items()}
    for header, value in example.headers.items():
        if header.lower() in ("authorization", "x-api-key"):
            assert value.replace(PLACEHOLDER, TOKEN) == {h.lower(): v for h, v in expected.items()}[header.lower()]
        else:
            assert header_matches(fixture_values[header.lower()], value), (header, value)
    assert notes_link(name) in example.page.read_text(encoding="utf-8"), f"{example.page.name}: link {name}'s notes"


def notes_link(name: str) -> str:
    """The link from a page to the fixture's section in the fixtures' README (sources and quirks)."""
    (readme,) = [p for p in FIXTURE_NOTES.glob("README-*.md") if f"\n## {name}.json\n" in p.read_text(encoding="utf-8")]
    return f"(../../tests/fixtures/platforms/{readme.name}#{name.replace('.', '')}json)"


@pytest.mark.parametrize("name", sorted({*EXAMPLES, *SHOWN_WITH}))
def test_the_fixtures_notes_cite_its_sources(name: str) -> None:
    (readme,) = [p for p in FIXTURE_NOTES.glob("README-*.md") if f"\n## {name}.json\n" in p.read_text(encoding="utf-8")]
    section = readme.read_text(encoding="utf-8").split(f"\n## {name}.json\n", 1)[1].split("\n## ", 1)[0]
    for source in load(name)["sources"]:
        assert source.split()[0] in section, f"{readme.name} {name}.json: source {source.split()[0]} not cited"
    page = EXAMPLES[SHOWN_WITH.get(name, name)].page
    assert notes_link(name) in page.read_text(encoding="utf-8"), f"{page.name}: link {name}'s notes"


@pytest.mark.parametrize("name", sorted(EXAMPLES))
async def test_the_example_is_answered_as_the_guide_says(bridge, fake_upstream: FakeUpstream, log_stream,
                                                         name: str) -> None:
    example, fixture = EXAMPLES[name], load(name)
    refusals = strict_openai(fake_upstream, ANSWER, fixture.get("response_chunks") or [])
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1"})
    headers = {h: v.replace(PLACEHOLDER, TOKEN) for h, v in example.headers.items()}
    path = urlsplit(example.url).path
    if example.form is not None:
        form = {k: v.replace(PLACEHOLDER, TOKEN) for k, v in example.form.items()}
        resp = await client.post(path, data=urlencode(form, quote_via=quote).encode(), headers=headers)
        assert (resp.status, await resp.json()) == (200, {"Text": "".join(ANSWER)})
        last = ast.literal_eval(example.form["Message"])[-1]
        assert fake_upstream.last.json()["messages"][-1] == last
    else:
        resp = await client.post(path, data=example.body.encode(), headers=headers)
        body = await resp.read()
        assert resp.status == 200, body
        events = [e.removeprefix(b"data: ") for e in body.split(b"\n\n") if e]
        assert events[-1] == b"[DONE]"
        text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or ""
                       for e in events[:-1] if json.loads(e).get("choices"))
        assert text == "".join(ANSWER)
    assert refusals == []  # the strict upstream took what the bridge sent
    line = [entry for entry in log_lines(log_stream) if entry.get("event") == "request"][-1]
    assert line["platform"] == EXPECTED_PLATFORM[name]

    logged = labelled_names(example.after, "Logged:")
    assert logged, f"{name}: no `Logged:` line under the example"
    assert logged[0] == line["platform"]
    assert sorted(logged[1:]) == sorted(key for key in line if key in ID_NAMES)
    dropped = labelled_names(example.after, "Dropped:")
    if example.form is None:
        assert dropped is not None, f"{name}: no `Dropped:` line under the example"
        assert sorted(dropped) == line.get("dropped", [])


def summary_rows() -> list[list[str]]:
    table = re.search(r"^\| Page \|.*?\n\| ---.*?\n((?:\|.*\n)+)", INDEX, re.M)
    assert table is not None, "docs/platforms.md: no table"
    return [[cell.strip() for cell in row.strip().strip("|").split(" | ")] for row in table.group(1).splitlines()]


def test_the_index_names_what_each_platform_logs() -> None:
    by_name = {platform.name: platform for platform in PLATFORMS}
    named: set[str] = set()
    for row in summary_rows():
        calls, names = row[1], re.findall(r"`([^`]+)`", row[-1])
        if not names:  # "as the plain route"
            continue
        assert len(names) == len(set(names)), row
        platform, ids = names[0], set(names[1:])
        named.add(platform)
        if calls.startswith("`POST /`"):
            assert (platform, ids) == ("alibaba_ims", FORM_IDS), row
        elif platform in SOCKET_IDS:
            assert ids and ids <= SOCKET_IDS[platform], row
        elif "/v1/responses" in calls:
            assert set(names) <= {*by_name, "openai"}, row
            named |= set(names)
        elif platform == "openai":
            assert ids == set(), row
        else:
            assert platform in by_name, row
            assert ids == {name for name, _ in by_name[platform].ids}, row
    assert set(by_name) <= named, set(by_name) - named
    for example in EXAMPLES.values():  # each example's page has a row naming what it is logged as
        rows = [r for r in summary_rows() if f"(platforms/{example.page.name})" in r[0]]
        assert EXPECTED_PLATFORM[example.name] in {re.findall(r"`([^`]+)`", r[-1])[0] for r in rows}, example.name
