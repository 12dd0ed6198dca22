"""docs/platforms.md, kept honest: each curl example is its fixture's documented request, and the app answers it.

Every curl example in the guide is marked `<!-- example: <fixture> -->`. Its path, headers and
JSON body (or form fields) are read out of the shell command and compared with the fixture in
tests/fixtures/platforms/ (the operator's key written as `$BRIDGE_TOKEN`), then sent as written
through the app to the strict OpenAI upstream, as tests/test_platforms.py sends the fixtures.
The `Logged:` and `Dropped:` lines under each example are checked against the request's log
line, and the summary table's identifier names against bridge/inbound/platforms.py.
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
from tests.support.app import log_lines
from tests.support.platform_fixtures import ANSWER, CHAT_FIXTURES, TOKEN, load, path_for, with_token
from tests.support.strict_openai import strict_openai
from tests.support.upstream import FakeUpstream

DOC = (Path(__file__).parent.parent / "docs" / "platforms.md").read_text(encoding="utf-8")
BASE = "http://localhost:8080"
PLACEHOLDER = "$BRIDGE_TOKEN"
# What each example must be logged as: an expectation of this test, not read from the guide.
EXPECTED_PLATFORM = {
    "ims_form": "alibaba_ims", "ims_openai": "alibaba_ims", "agora": "agora", "agora_minimal": "openai",
    "tencent_trtc": "tencent_trtc", "volcengine": "volcengine", "vapi": "vapi", "elevenlabs": "elevenlabs",
    "livekit": "livekit", "pipecat": "openai", "aiccs": "alibaba_aiccs", "did": "d-id",
}
FORM_IDS = {"instance_id", "user_data"}  # what the form route logs from ExtendData
ID_NAMES = {name for platform in PLATFORMS for name, _ in platform.ids} | FORM_IDS
SOURCES_SHOWN_WITH = {"ims_call_control": "ims_form"}  # fixtures without an example: whose section cites them

MARKED = re.compile(r"<!-- example: (\w+) -->\n```sh\n(.*?)\n```\n", re.S)
FENCED = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)


@dataclass
class Example:
    name: str
    url: str
    headers: dict[str, str]
    body: str | None  # the heredoc, as curl sends it
    form: dict[str, str] | None  # the --data-urlencode fields
    section: str  # the guide's `## ` section holding it
    after: str  # the guide's text from the example to the next example or heading


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


def examples() -> dict[str, Example]:
    sections = re.split(r"^(?=## )", DOC, flags=re.M)
    found: dict[str, Example] = {}
    for section in sections:
        marks = list(MARKED.finditer(section))
        for i, mark in enumerate(marks):
            name = mark.group(1)
            assert name not in found, f"two examples for {name}"
            end = marks[i + 1].start() if i + 1 < len(marks) else len(section)
            url, headers, body, form = parse_curl(mark.group(2))
            found[name] = Example(name, url, headers, body, form, section, section[mark.end():end])
    return found


EXAMPLES = examples()


def paragraph(text: str, label: str) -> list[str] | None:
    """The backticked names of the paragraph starting `label`, leaving out (parenthesised) asides."""
    match = re.search(rf"^{label}(.*?)(?:\n\n|\Z)", text, re.S | re.M)
    if match is None:
        return None
    return re.findall(r"`([^`]+)`", re.sub(r"\([^)]*\)", "", match.group(1)))


def header_matches(fixture_value: str, doc_value: str) -> bool:
    """The guide's value is the fixture's, a `<...>` placeholder standing for any value."""
    pattern = "".join(".+" if part.startswith("<") else re.escape(part)
                      for part in re.split(r"(<[^>]*>)", fixture_value) if part)
    return re.fullmatch(pattern, doc_value) is not None


@pytest.fixture
def bridge_defaults() -> dict[str, str]:
    return {"BRIDGE_TOKENS": TOKEN}


def test_every_curl_example_is_marked_and_every_fixture_has_one() -> None:
    unmarked = [body for _, body in FENCED.findall(DOC) if re.search(r"^curl ", body, re.M)]
    assert len(unmarked) == len(EXAMPLES), "a curl example without an <!-- example: ... --> marker"
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
    for source in fixture["sources"]:
        assert source.split()[0] in example.section, f"{name}: source {source.split()[0]} not cited"


def test_fixtures_without_an_example_are_cited_where_they_apply() -> None:
    for name, shown_with in SOURCES_SHOWN_WITH.items():
        for source in load(name)["sources"]:
            assert source.split()[0] in EXAMPLES[shown_with].section, (name, source)


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

    logged = paragraph(example.after, "Logged:")
    assert logged, f"{name}: no `Logged:` line under the example"
    assert logged[0] == line["platform"]
    assert sorted(logged[1:]) == sorted(key for key in line if key in ID_NAMES)
    dropped = paragraph(example.after, "Dropped:")
    if example.form is None:
        assert dropped is not None, f"{name}: no `Dropped:` line under the example"
        assert sorted(dropped) == line.get("dropped", [])


def summary_rows() -> list[list[str]]:
    table = re.search(r"^\| Platform \|.*?\n\| ---.*?\n((?:\|.*\n)+)", DOC, re.M)
    assert table is not None, "no summary table"
    return [[cell.strip() for cell in row.strip().strip("|").split("|")] for row in table.group(1).splitlines()]


def test_the_summary_table_names_what_each_platform_logs() -> None:
    by_name = {platform.name: platform for platform in PLATFORMS}
    rows = summary_rows()
    assert len(rows) == len(EXAMPLES)  # a row per example: Agora has one per vendor mode
    for row in rows:
        calls, names = row[1], re.findall(r"`([^`]+)`", row[-1])
        assert len(names) == len(set(names)), row
        platform, ids = names[0], set(names[1:])
        if calls.startswith("`POST /`"):
            assert (platform, ids) == ("alibaba_ims", FORM_IDS), row
        elif platform == "openai":
            assert ids == set(), row
        else:
            assert platform in by_name, row
            assert ids == {name for name, _ in by_name[platform].ids}, row
    # A platform recognised only on the Responses API's WebSocket is documented on that page instead.
    responses_page = (Path(__file__).parent.parent / "docs" / "platforms" / "responses.md").read_text(encoding="utf-8")
    untabled = set(by_name) - {re.findall(r"`([^`]+)`", row[-1])[0] for row in rows}
    assert all(f"`{name}`" in responses_page for name in untabled), untabled
