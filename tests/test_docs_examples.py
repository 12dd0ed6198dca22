"""Every example in the docs runs as written: README.md, docs/, docs/platforms/, specs/README.md, bench/.

Each fenced block says what it is in its info string (```` ```sh curl ````, ```` ```json output ````);
tests/support/docs.py lists every kind, the test module that runs it and the placeholder rule.
This module runs the kinds that are not a spec's, a tools file's or an agents file's: curls with
curl and scripts with the venv's python against the real app (the echo model, or a fake
upstream for the streams echo cannot make), start commands built into an app or run until they
fail, output compared with what the doc prints, `Logged:` lines with the request's log line.
Commands that cannot run here (deploys, benchmarks) are checked against the files they use, or
skipped with the reason. It also checks the docs as a whole: sizes, the venv in every command,
one table of settings, a page per platform.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import shlex
import socket
import sys
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from bridge.config import read_settings
from bridge.config.agents import PROCESS_WIDE
from bridge.config.env import setting_names
from bridge.inbound.sockets.relay import end_message
from bridge.process.app import create_app
from bridge.upstreams import env_names
from tests.support.docs import (
    DOCS,
    KINDS,
    OUTPUTS,
    ROOT,
    SECRET,
    Block,
    all_blocks,
    blocks,
    filled,
    json_matches,
    labelled_names,
    of,
    start_environment,
    text_matches,
)
from tests.support.playground import weather_env, weather_model
from tests.support.upstream import FakeUpstream

HERE = Path(__file__).stem
PROCESS_ONLY = {"PROMETHEUS_MULTIPROC_DIR"}  # read by gunicorn.conf.py and prometheus_client, not by Settings
MAX_README = 12 * 1024
MAX_PAGE = 6 * 1024
TIMEOUT = 60.0  # seconds any one example may take


def ids(block: Block) -> str:
    return block.name


# -- the docs as a whole ------------------------------------------------------------------------------

def test_every_block_says_what_it_is() -> None:
    unknown = [(b.name, b.kind) for b in all_blocks() if b.kind not in KINDS]
    assert not unknown, f"give each block a kind from tests/support/docs.py KINDS: {unknown}"
    for block in all_blocks():
        if block.kind.startswith("json ") and block.kind != "json agora-llm":
            json.loads(block.text)  # every JSON example is JSON


@pytest.mark.parametrize("block", [b for b in all_blocks() if KINDS.get(b.kind, (HERE,))[0] != HERE], ids=ids)
def test_a_kind_run_elsewhere_is_run_there(block: Block) -> None:
    runner = ROOT / "tests" / f"{KINDS[block.kind][0]}.py"
    assert str(block.doc.relative_to(ROOT)) in runner.read_text(encoding="utf-8"), f"{runner.name} reads {block.doc}"


def commands(doc: Path) -> list[str]:
    """The commands of a doc: its code spans, and the lines of its sh blocks."""
    text = doc.read_text(encoding="utf-8")
    spans = re.findall(r"(?<!`)`([^`\n]+)`(?!`)", re.sub(r"^( *)```.*?^\1```$", "", text, flags=re.S | re.M))
    fenced = [line for b in blocks(doc) if b.kind.startswith("sh ") for line in b.text.splitlines()]
    return spans + fenced


def test_every_command_uses_the_projects_venv() -> None:
    """`python` alone is whichever Python is on the PATH, without the project's packages (ModuleNotFoundError)."""
    bare = re.compile(r"^\s*(?:export\s+)?(?:[A-Z_][A-Z0-9_]*=\S*\s+)*python3?\s(?!-m venv)")
    found = [(doc.name, line) for doc in DOCS for line in commands(doc) if bare.search(line)]
    assert not found, f"use .venv/bin/python: {found}"


def test_the_readme_and_each_platform_page_are_short() -> None:
    assert len((ROOT / "README.md").read_bytes()) <= MAX_README
    pages = sorted((ROOT / "docs" / "platforms").glob("*.md"))
    assert pages and all(len(p.read_bytes()) <= MAX_PAGE for p in pages), [
        (p.name, len(p.read_bytes())) for p in pages if len(p.read_bytes()) > MAX_PAGE]


def test_the_readme_and_the_index_link_every_platform_page() -> None:
    pages = {p.name for p in (ROOT / "docs" / "platforms").glob("*.md")}
    readme = set(re.findall(r"\(docs/platforms/([\w-]+\.md)\)", (ROOT / "README.md").read_text(encoding="utf-8")))
    index = set(re.findall(r"\(platforms/([\w-]+\.md)\)", (ROOT / "docs" / "platforms.md").read_text(encoding="utf-8")))
    assert readme == pages and index == pages


def settings_rows() -> dict[str, list[str]]:
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8").split("\n## Settings\n", 1)[1]
    table = re.search(r"^\| Variable \|.*?\n\| ---.*?\n((?:\|.*\n)+)", text, re.M)
    assert table is not None, "docs/operations.md: no settings table"
    rows: dict[str, list[str]] = {}
    for line in table.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        (name,) = re.findall(r"`([A-Z0-9_]+)`", cells[0])
        assert name not in rows, f"{name} twice"
        rows[name] = cells
    return rows


def test_one_table_lists_every_setting_and_whether_an_agent_may_set_it() -> None:
    rows = settings_rows()
    assert set(rows) == setting_names() | PROCESS_ONLY
    assert {name for name, cells in rows.items() if cells[2] == "process"} == PROCESS_WIDE
    assert all(cells[2] in ("process", "agent") for cells in rows.values())


def test_no_example_is_printed_twice() -> None:
    seen: dict[str, str] = {}
    for block in all_blocks():
        if block.kind.startswith("json ") and block.kind != "json agora-llm" and len(block.text) > 200:
            key = json.dumps(json.loads(block.text), sort_keys=True)
            assert key not in seen, f"{block.name} repeats {seen[key]}: link to it instead"
            seen[key] = block.name


def test_every_output_follows_what_prints_it() -> None:
    for block in of(*OUTPUTS):
        before = block.blocks[block.index - 1] if block.index else None
        wanted = ("sh start-fails",) if block.kind == "text error" else ("sh curl", "python run", "sh command")
        assert before is not None and before.kind in wanted, f"{block.name}: {block.kind} after {before}"


# -- running things --------------------------------------------------------------------------------

@dataclasses.dataclass
class Ran:
    code: int
    out: str
    err: str


def plain_env(**more: str) -> dict[str, str]:
    """A clean environment: no settings, no proxies; the worktree's bridge importable."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8",
            "NO_PROXY": "*", "no_proxy": "*", "PYTHONPATH": str(ROOT), **more}


async def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> Ran:
    proc = await asyncio.create_subprocess_exec(*argv, cwd=cwd, env=env or plain_env(), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, start_new_session=True)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{argv[:3]} did not finish within {TIMEOUT:g} s") from None
    return Ran(proc.returncode or 0, out.decode(), err.decode())


async def workdir(tmp_path: Path, block: Block) -> Path:
    """A scratch folder where `.venv` is the project's venv, after the file's earlier `sh command` blocks ran."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    if not (work / ".venv").exists():
        (work / ".venv").symlink_to(Path(sys.executable).parents[1])
    for earlier in block.earlier("sh command"):
        ran = await run(["bash", "-ec", earlier.text], work)
        assert ran.code == 0, (earlier.name, ran.err)
    return work


def resolved(block: Block, env: dict[str, str], work: Path, tmp_path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The settings with the doc's paths made real: a file another block of the doc shows (`file=`), a
    folder an earlier command made (`./...`). Also: real path -> the path the doc prints."""
    shown = {b.options["file"]: b for b in block.blocks if "file" in b.options}
    out, back = {}, {}
    for name, value in env.items():
        if value in shown:
            real = tmp_path / Path(value).name
            real.write_text(shown[value].text, encoding="utf-8")
            out[name], back[str(real)] = str(real), value
        elif value.startswith("./"):
            out[name] = str(work / value)
        else:
            out[name] = value
    return out, back


def started_with(block: Block) -> dict[str, str]:
    """The settings the doc started the bridge with for `block`: its file's last `sh start` above it."""
    starts = block.earlier("sh start")
    return start_environment(starts[-1].text) if starts else {}


def shown_output(block: Block) -> Block | None:
    after = block.next
    return after if after is not None and after.kind in OUTPUTS else None


def compare(printed: Block, actual: str) -> None:
    if printed.kind == "json output":
        assert json_matches(json.loads(printed.text), json.loads(actual)), f"{printed.name}: got {actual}"
    else:
        assert text_matches(printed.text, actual), f"{printed.name}: got\n{actual}"


def answered(output: str) -> None:
    """Output no block shows: a stream that ended with [DONE] and no error, or JSON that is no error."""
    if output.startswith(("data:", ": trace")):
        assert output.rstrip().endswith("data: [DONE]") and '"error"' not in output, output[-500:]
    else:
        assert "error" not in json.loads(output), output


# -- start commands ------------------------------------------------------------------------------

def known_names(settings: Any) -> set[str]:
    names = set(setting_names()) | env_names(settings)
    if settings.tools_file:
        names |= set(re.findall(r"\$\{env\.([A-Za-z_]\w*)\}", Path(settings.tools_file).read_text(encoding="utf-8")))
    return names


@pytest.mark.parametrize("block", of("sh start"), ids=ids)
async def test_a_start_command_starts(tmp_path: Path, block: Block) -> None:
    work = await workdir(tmp_path, block)
    env, _ = resolved(block, start_environment(block.text), work, tmp_path)
    settings = read_settings(env)
    assert set(env) <= known_names(settings), set(env) - known_names(settings)
    assert create_app(settings) is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("block", of("sh start-fails"), ids=ids)
async def test_a_start_command_that_fails_says_what_the_doc_prints(tmp_path: Path, block: Block) -> None:
    work = await workdir(tmp_path, block)
    env, back = resolved(block, start_environment(block.text), work, tmp_path)
    ran = await run([sys.executable, "app.py"], ROOT, plain_env(PORT=str(free_port()), **env))
    assert ran.code != 0, "it started"
    printed = shown_output(block)
    assert printed is not None and printed.kind == "text error"
    message = ran.err.strip().splitlines()[-1]
    for real, doc_path in back.items():
        message = message.replace(real, doc_path)
    assert message == printed.text.strip()


# -- requests and scripts against the bridge -----------------------------------------------------

@pytest.mark.parametrize("block", of("sh curl", "python run"), ids=ids)
async def test_a_request_answers_as_the_doc_prints(bridge, log_stream, tmp_path: Path, block: Block) -> None:
    work = await workdir(tmp_path, block)
    env, _ = resolved(block, started_with(block), work, tmp_path)
    assert not {"UPSTREAM", "OPENAI_BASE_URL", "OPENAI_API_KEY"} & set(env), "examples run against the echo model"
    client = await bridge(env)
    text = block.text.replace("localhost:8080", f"127.0.0.1:{client.server.port}")
    if block.kind == "sh curl":
        assert block.text.lstrip().startswith("curl "), block.name
        ran = await run(["bash", "-ec", text], work)
    else:
        script = work / "example.py"
        script.write_text(text, encoding="utf-8")
        ran = await run([sys.executable, str(script)], work)
    assert ran.code == 0, ran.err
    printed = shown_output(block)
    if printed is not None:
        compare(printed, ran.out)
    elif block.kind == "sh curl":
        answered(ran.out)
    names = labelled_names((printed or block).after, "Logged:")
    if names and "fixture" not in block.options:  # a platform's documented request: tests/test_platforms_doc.py
        line = await log_stream.wait_for_line(lambda entry: entry.get("event") == "request")
        assert line["platform"] == names[0], line
        assert set(names[1:]) <= set(line), set(names[1:]) - set(line)


@pytest.mark.parametrize("block", of("sh command"), ids=ids)
async def test_a_command_prints_what_the_doc_prints(tmp_path: Path, block: Block) -> None:
    work = await workdir(tmp_path, block)  # the earlier commands
    ran = await run(["bash", "-ec", block.text], work)
    assert ran.code == 0, ran.err
    printed = shown_output(block)
    assert printed is not None, f"{block.name}: show what it prints"
    compare(printed, ran.out)


# -- streams echo cannot make: a fake upstream plays the model --------------------------------------

async def slow_start(bridge, fake_upstream: FakeUpstream, **_: Any) -> str:
    """FILLER_AFTER_MS: the model says nothing until the caller has heard the filler."""
    fake_upstream.reply = ["Your parcel arrives on Monday."]
    release = asyncio.Event()
    fake_upstream.hold(release)
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "FILLER_AFTER_MS": "50"})
    resp = await client.post("/v1/chat/completions", json={
        "model": "m", "stream": True, "messages": [{"role": "user", "content": "When does my parcel arrive?"}]})
    heard = b""
    async for piece in resp.content.iter_any():
        heard += piece
        if b'"content":"One moment."' in heard:
            release.set()
    return heard.decode()


async def weather_tool(bridge, fake_upstream: FakeUpstream, weather_server: Any, tmp_path: Path, **_: Any) -> str:
    """A bridge tool the model calls, with the trace on (tests/support/playground.py)."""
    weather_model(fake_upstream)
    client = await bridge(weather_env(fake_upstream, weather_server.url("/weather"), tmp_path))
    resp = await client.post("/v1/chat/completions", headers={"X-Bridge-Trace": "on"}, json={
        "stream": True, "messages": [{"role": "user", "content": "What's the weather in Paris?"}]})
    return await resp.text()


SCENARIOS: dict[str, Callable[..., Awaitable[str]]] = {"slow-start": slow_start, "weather-tool": weather_tool}


@pytest.mark.parametrize("block", of("sse sketch"), ids=ids)
async def test_a_sketched_stream_is_what_its_scenario_streams(bridge, fake_upstream, weather_server, tmp_path,
                                                              block: Block) -> None:
    scenario = SCENARIOS[block.options["scenario"]]
    streamed = await scenario(bridge, fake_upstream, weather_server=weather_server, tmp_path=tmp_path)
    assert text_matches(block.text, streamed), streamed


# -- what cannot run here ------------------------------------------------------------------------

def test_install_commands_are_what_ci_runs() -> None:
    runtime, dev = (b.text.strip() for b in of("sh install"))
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()[-1]
    assert dev == ci, "README's test command is .ci/run's, exactly"
    assert runtime == "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt && .venv/bin/python app.py"
    assert (ROOT / "requirements.txt").is_file() and (ROOT / "requirements-dev.txt").is_file()


def deployment() -> dict[str, Any]:
    docs = yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "deployment.yaml").read_text(encoding="utf-8"))
    (found,) = [d for d in docs if d and d.get("kind") == "Deployment"]
    return found  # type: ignore[no-any-return]


def heroku(words: list[str]) -> None:
    """`heroku config:set`: the settings app.json's Deploy button asks for, valid, configuring the same service."""
    if words[1] != "config:set":
        return
    env = {k: filled(v) for k, v in (w.split("=", 1) for w in words[2:])}
    app_json = json.loads((ROOT / "app.json").read_text(encoding="utf-8"))["env"]
    assert set(env) <= set(app_json), set(env) - set(app_json)
    defaults = {name: spec["value"] for name, spec in app_json.items() if "value" in spec}
    with_button, by_hand = read_settings({**defaults, **env}), read_settings(env)
    assert dataclasses.replace(with_button, env={}) == dataclasses.replace(by_hand, env={}), \
        "app.json's values must be the bridge's defaults, or set here too"


def docker(words: list[str]) -> None:
    image = deployment()["spec"]["template"]["spec"]["containers"][0]["image"]
    if words[1] == "build":
        assert words[words.index("-t") + 1] == image and words[-1] == "." and (ROOT / "Dockerfile").is_file()
    else:
        assert words[-1] == image
        env = dict(words[i + 1].split("=", 1) for i, w in enumerate(words) if w == "-e")
        assert set(env) <= setting_names() and read_settings({k: filled(v) for k, v in env.items()})


def kubectl(words: list[str]) -> None:
    if words[1:3] == ["create", "secret"]:
        container = deployment()["spec"]["template"]["spec"]["containers"][0]
        refs = [src["secretRef"]["name"] for src in container["envFrom"] if "secretRef" in src]
        assert [words[4]] == refs
        keys = [w.split("=", 1)[1].split("=", 1)[0] for w in words if w.startswith("--from-literal=")]
        assert keys and set(keys) <= setting_names()
    else:
        assert words[1:3] == ["apply", "-k"] and (ROOT / words[3] / "kustomization.yaml").is_file()


DEPLOYERS = {"heroku": heroku, "docker": docker, "kubectl": kubectl, "git": lambda words: None}


@pytest.mark.parametrize("block", of("sh deploy"), ids=ids)
def test_a_deploy_command_agrees_with_the_deploy_files(block: Block) -> None:
    """Not run (no Heroku account, Docker engine or cluster here): checked against app.json and the manifests."""
    for line in block.text.replace("\\\n", " ").splitlines():
        words = shlex.split(re.sub(r"\$\(.*?\)", SECRET, line))
        DEPLOYERS[words[0]](words)


@pytest.mark.parametrize("block", of("sh bench"), ids=ids)
async def test_a_benchmark_command_is_one(block: Block) -> None:
    """Not run (minutes, and its figures vary): the script exists and takes --help."""
    words = shlex.split(block.text, comments=True)
    assert words[0] == ".venv/bin/python" and (ROOT / words[1]).is_file()
    ran = await run([sys.executable, words[1], "--help"], ROOT)
    assert ran.code == 0, ran.err


@pytest.mark.parametrize("block", of("text bench-output"), ids=ids)
def test_a_benchmarks_recorded_output(block: Block) -> None:
    pytest.skip(KINDS[block.kind][1])


# -- configuration a platform's console holds --------------------------------------------------

def routes(method: str) -> set[str]:
    app = create_app(read_settings({}))
    return {r.resource.canonical for r in app.router.routes() if r.method == method and r.resource is not None}


@pytest.mark.parametrize("block", of("json agora-llm"), ids=ids)
def test_agoras_llm_block_names_an_agora_route(block: Block) -> None:
    llm = json.loads("{" + block.text + "}")["llm"]
    path = urlsplit(llm["url"]).path
    assert path in {"/chat/completions", "/rag/chat/completions", "/audio/chat/completions"} & routes("POST")
    assert "BRIDGE_TOKENS" in llm["api_key"]


@pytest.mark.parametrize("block", of("xml twiml"), ids=ids)
def test_twiml_connects_to_the_relay_route(block: Block) -> None:
    relay = ET.fromstring(block.text.split("?>", 1)[1]).find("./Connect/ConversationRelay")
    assert relay is not None
    url = urlsplit(relay.attrib["url"])
    assert url.scheme == "wss" and url.path in routes("GET") and url.path == "/conversation-relay"


@pytest.mark.parametrize("block", of("json relay-end"), ids=ids)
def test_the_end_message_is_the_one_the_bridge_sends(block: Block) -> None:
    assert json.loads(block.text) == end_message("hangup")


@pytest.mark.parametrize("block", of("text tree"), ids=ids)
def test_the_module_map_names_real_paths_and_every_package(block: Block) -> None:
    named: set[Path] = set()
    for line in block.text.splitlines():
        names = [n.strip() for n in re.split(r" {2,}", line, maxsplit=1)[0].split(",")]
        first = ROOT / names[0]
        for name in names:
            candidates = [ROOT / name, first.parent / name] if "/" not in name.rstrip("/") else [ROOT / name]
            found = [p for c in candidates for p in (sorted(c.parent.glob(c.name)) if "*" in name else [c])
                     if p.exists()]
            assert found, f"{name}: no such path"
            named |= set(found)
    packages = {p.parent for p in (ROOT / "bridge").glob("*/__init__.py")}
    assert packages <= named, packages - named

