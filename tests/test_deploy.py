"""The deployment files agree with the app and with each other.

No Docker engine or cluster runs here, so these tests parse Dockerfile, .dockerignore,
.python-version, app.json and deploy/kubernetes/*.yaml and check what would otherwise only fail
in production: the command is the Procfile's, probes hit real routes, the grace period covers
the drain, selectors match, resources fit the benchmark figures, nothing runs as root.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.config import Settings, read_settings
from bridge.config.agents import PROCESS_WIDE
from bridge.process.app import create_app

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "kubernetes"

# The app's promise: after SIGTERM the process exits within DRAIN_TIMEOUT + this many seconds.
EXIT_SLACK_S = 1.0
# A Heroku-style router gives a stopping dyno this long before SIGKILL.
PAAS_STOP_S = 30.0
# bench/README.md (re-measured from time to time: update these and deployment.yaml together).
PROCESS_RSS_MB = 52.0  # one process's peak RSS: `python app.py`, 51.2 MB (bench/README.md)
STREAM_RSS_KB = 41.0  # per held stream: fleet.py hold, (444.7 - 46.9) MB / 9,968 streams


# --- helpers -------------------------------------------------------------------------------


def procfile_web() -> list[str]:
    for line in (ROOT / "Procfile").read_text(encoding="utf-8").splitlines():
        if line.startswith("web:"):
            return shlex.split(line.removeprefix("web:"))
    raise AssertionError("Procfile has no web: process")


@cache
def settings_reference() -> str:
    """docs/operations.md: the operator's reference, where every setting is in one table."""
    return (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")


def documented(name: str) -> bool:
    return f"| `{name}` |" in settings_reference()


@cache
def manifests() -> dict[str, list[dict[str, Any]]]:
    """Every YAML document under deploy/kubernetes/, by file name."""
    out: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
        assert docs, f"{path.name} is empty"
        out[path.name] = docs
    return out


def one(kind: str) -> dict[str, Any]:
    found = [d for name, docs in manifests().items() for d in docs
             if d.get("kind") == kind and name != "secret.example.yaml"]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def deployment() -> dict[str, Any]:
    return one("Deployment")


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = deployment()["spec"]["template"]["spec"]
    return spec


def container() -> dict[str, Any]:
    containers = pod_spec()["containers"]
    assert len(containers) == 1, "one container: the bridge"
    c: dict[str, Any] = containers[0]
    return c


def container_env() -> dict[str, str]:
    """The container's explicit `env` entries with literal values."""
    return {e["name"]: e["value"] for e in container().get("env", []) if "value" in e}


def secret_example() -> dict[str, Any]:
    docs = manifests()["secret.example.yaml"]
    assert len(docs) == 1 and docs[0]["kind"] == "Secret"
    return docs[0]


def configmap() -> dict[str, Any]:
    (doc,) = manifests()["configmap.yaml"]
    assert doc["kind"] == "ConfigMap"
    return doc


def manifest_settings() -> Settings:
    """Settings as a pod would build them: the ConfigMap's and the example Secret's keys, then the explicit env."""
    return read_settings({**configmap()["data"], **secret_example()["stringData"], **container_env()})


def setting(settings: Settings, name: str) -> Any:
    """A server setting, wherever the settings object keeps it (`settings.server.x` or `settings.x`)."""
    for holder in (getattr(settings, "server", None), settings):
        if holder is not None and hasattr(holder, name):
            return getattr(holder, name)
    raise AssertionError(f"Settings has no {name}")


@cache
def get_routes() -> frozenset[str]:
    app = create_app(read_settings({}))
    return frozenset(r.resource.canonical for r in app.router.routes()
                     if r.method == "GET" and r.resource is not None)


_UNITS = {"": 1.0, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30}


def quantity(value: object) -> float:
    """A Kubernetes resource quantity ("500m", "2", "256Mi") as a number (cores or bytes)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Za-z]*)", str(value))
    assert m and m.group(2) in _UNITS, f"unsupported quantity {value!r}"
    return float(m.group(1)) * _UNITS[m.group(2)]


@cache
def dockerfile() -> tuple[tuple[str, str], ...]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    current = ""
    for raw in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        keyword, _, rest = (current + line).partition(" ")
        out.append((keyword.upper(), rest.strip()))
        current = ""
    assert not current, "Dockerfile ends inside a continuation line"
    return tuple(out)


def instructions(keyword: str) -> list[str]:
    return [rest for kw, rest in dockerfile() if kw == keyword]


def strip_flags(rest: str) -> tuple[dict[str, str], str]:
    flags: dict[str, str] = {}
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        key, _, value = flag[2:].partition("=")
        flags[key] = value
        rest = rest.strip()
    return flags, rest


def copies() -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY/ADD from the build context."""
    out = []
    for kw, rest in dockerfile():
        if kw not in ("COPY", "ADD"):
            continue
        flags, rest = strip_flags(rest)
        if "from" in flags:
            continue
        parts = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
        assert len(parts) >= 2, f"{kw} {rest}"
        out.append((parts[:-1], parts[-1]))
    return out


def docker_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for rest in instructions("ENV"):
        tokens = shlex.split(rest)
        if tokens and "=" not in tokens[0]:  # legacy `ENV NAME value`
            env[tokens[0]] = " ".join(tokens[1:])
            continue
        for token in tokens:
            name, _, value = token.partition("=")
            env[name] = value
    return env


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus `**`) matching a path or anything under it."""
    p = pattern.strip().strip("/")
    out, i = [], 0
    while i < len(p):
        if p.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
        elif p.startswith("**", i):
            out.append(".*")
            i += 2
        elif p[i] == "*":
            out.append("[^/]*")
            i += 1
        elif p[i] == "?":
            out.append("[^/]")
            i += 1
        elif p[i] == "[":
            j = p.index("]", i + 1)
            out.append("[" + p[i + 1:j].replace("!", "^", 1) + "]")
            i = j + 1
        else:
            out.append(re.escape(p[i]))
            i += 1
    return re.compile("".join(out) + "(?:/.*)?")


@cache
def dockerignore() -> tuple[tuple[bool, re.Pattern[str]], ...]:
    rules = []
    for raw in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        rules.append((negate, _ignore_regex(line.removeprefix("!"))))
    return tuple(rules)


def ignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` (relative to the repo) out of the build context."""
    result = False
    for negate, regex in dockerignore():
        if regex.fullmatch(path):
            result = not negate
    return result


# --- Kubernetes ----------------------------------------------------------------------------


def test_every_manifest_parses_and_kustomization_lists_all_but_the_example_secret() -> None:
    for name, docs in manifests().items():
        for doc in docs:
            assert doc.get("apiVersion") and doc.get("kind"), name
            if doc["kind"] != "Kustomization":
                assert doc["metadata"]["name"] == "voice-llm-bridge", name
    kustomization = manifests()["kustomization.yaml"][0]
    listed = set(kustomization["resources"])
    expected = set(manifests()) - {"kustomization.yaml", "secret.example.yaml"}
    assert listed == expected
    assert expected >= {"deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml"}


def test_container_runs_exactly_the_procfile_command() -> None:
    c = container()
    assert [*c["command"], *c.get("args", [])] == procfile_web()


def test_probes_hit_real_get_routes_on_the_named_port() -> None:
    c = container()
    port_names = {p["name"] for p in c["ports"]}
    probes = {kind: c[kind] for kind in ("startupProbe", "livenessProbe", "readinessProbe") if kind in c}
    assert {"livenessProbe", "readinessProbe"} <= set(probes)
    for kind, probe in probes.items():
        path = probe["httpGet"]["path"]
        assert path in get_routes(), f"{kind} {path} is not a GET route of the app"
        assert probe["httpGet"]["port"] in port_names, kind
    # Liveness must survive draining (/readyz turns 503 on SIGTERM); readiness must see it.
    assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
    readiness = probes["readinessProbe"]
    assert readiness["periodSeconds"] * readiness.get("failureThreshold", 3) <= 10


def test_ports_agree_across_dockerfile_pod_service_and_scrape_annotations() -> None:
    (http,) = [p for p in container()["ports"] if p["name"] == "http"]
    port = http["containerPort"]
    assert setting(manifest_settings(), "port") == port
    assert instructions("EXPOSE") == [str(port)]
    assert docker_env()["PORT"] == str(port)
    service = one("Service")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    annotations = deployment()["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] in get_routes()


def test_grace_period_covers_prestop_sleep_and_the_whole_drain() -> None:
    settings = manifest_settings()
    drain = setting(settings, "drain_timeout")  # the manifest's DRAIN_TIMEOUT, or the app's default
    command = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep" and len(command) == 2
    pre_stop = float(command[1])
    grace = pod_spec()["terminationGracePeriodSeconds"]
    assert grace > pre_stop + drain + EXIT_SLACK_S, (grace, pre_stop, drain)
    if hasattr(getattr(settings, "server", settings), "drain_delay"):
        assert setting(settings, "drain_delay") < drain


def test_service_hpa_and_pdb_select_the_deployment_pods() -> None:
    dep = deployment()
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    selector = dep["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    service = one("Service")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert "sessionAffinity" not in service["spec"] or service["spec"]["sessionAffinity"] == "None"
    target = one("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == ("apps/v1", "Deployment",
                                                                       dep["metadata"]["name"])
    assert one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == selector


def test_hpa_bounds_scale_down_window_and_pdb_leave_room_to_drain_nodes() -> None:
    hpa = one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    low, high = hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]
    assert 2 <= low <= high
    # The HPA owns the replica count: a `replicas:` here would be re-applied over its choice.
    assert "replicas" not in deployment()["spec"]
    assert {m["type"] for m in hpa["spec"]["metrics"]} >= {"Resource"}
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 300
    pdb = one("PodDisruptionBudget")["spec"]
    assert pdb.get("maxUnavailable", 0) >= 1 or pdb["minAvailable"] < low


async def test_hpa_commented_custom_metric_is_one_the_app_exports(aiohttp_client: Any) -> None:
    text = (K8S / "hpa.yaml").read_text(encoding="utf-8")
    names = re.findall(r"^\s*#\s*name:\s*(\w+)\s*$", text, flags=re.MULTILINE)
    assert names == ["bridge_in_flight_streams"]
    client = await aiohttp_client(create_app(read_settings({})))
    response = await client.get("/metrics")
    assert response.status == 200
    assert re.search(rf"^{names[0]}(\{{.*\}})? ", await response.text(), flags=re.MULTILINE)


def test_resources_fit_the_benchmark_figures_and_the_worker_count() -> None:
    resources = container()["resources"]
    for kind in ("cpu", "memory"):
        assert quantity(resources["requests"][kind]) <= quantity(resources["limits"][kind]), kind
    env = container_env()
    assert "WEB_CONCURRENCY" in env, "set it: in a pod gunicorn would count the node's CPUs"
    workers = int(env["WEB_CONCURRENCY"])
    assert 1 <= workers <= math.ceil(quantity(resources["limits"]["cpu"]))
    max_concurrency = setting(manifest_settings(), "max_concurrency")
    # master + workers at idle, plus every worker holding MAX_CONCURRENCY streams
    need = (workers + 1) * PROCESS_RSS_MB * 1e6 + workers * max_concurrency * STREAM_RSS_KB * 1e3
    assert quantity(resources["requests"]["memory"]) >= need, f"memory request below {need / 2**20:.0f}Mi"


def test_pod_runs_as_the_image_user_with_a_read_only_root_and_a_writable_tmp() -> None:
    pod = pod_spec()
    c = container()
    pod_ctx, ctx = pod.get("securityContext", {}), c["securityContext"]
    assert ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")) is True
    uid = ctx.get("runAsUser", pod_ctx.get("runAsUser"))
    assert uid is not None and str(uid) == instructions("USER")[-1].partition(":")[0]
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"]["drop"] == ["ALL"]
    assert ctx["readOnlyRootFilesystem"] is True
    (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert "emptyDir" in volume


def test_env_is_valid_documented_config_and_secrets_stay_in_the_secret() -> None:
    manifest_settings()  # raises ConfigError on a bad value
    env_names = [e["name"] for e in container().get("env", [])]
    secret = secret_example()
    secret_keys = set(secret["stringData"])
    for name in [*env_names, *secret_keys]:
        assert documented(name), f"{name} is not in docs/operations.md's table of settings"
    for name in env_names:
        assert not re.search(r"KEY|TOKEN|SECRET|PASSWORD", name), f"{name} belongs in the Secret"
    assert not secret_keys & set(env_names), "an explicit env entry would override the Secret"
    refs = [src["secretRef"]["name"] for src in container()["envFrom"] if "secretRef" in src]
    assert refs == [secret["metadata"]["name"]]
    for key, value in secret["stringData"].items():
        assert "replace" in value, f"{key}: secret.example.yaml holds placeholders only"


def test_the_deployment_sets_no_upstream_setting_outside_the_configmap_and_secret() -> None:
    """`env` would silently win over the operator's ConfigMap and Secret: only the process's own settings
    (one listener, one drain, one cap: what an agent may not set either) belong there."""
    env_names = {e["name"] for e in container().get("env", [])}
    assert env_names <= PROCESS_WIDE, env_names - PROCESS_WIDE
    (ref,) = [src["configMapRef"]["name"] for src in container()["envFrom"] if "configMapRef" in src]
    assert ref == configmap()["metadata"]["name"]
    for name in configmap()["data"]:
        assert documented(name) and name not in PROCESS_WIDE, name


def test_the_ingress_streams_keeps_sockets_open_and_terminates_tls() -> None:
    (ingress,) = manifests()["ingress.yaml"]
    notes = ingress["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"  # SSE reaches the caller as written
    for timeout in ("proxy-read-timeout", "proxy-send-timeout"):  # a call's socket outlives nginx's 60 s default
        assert int(notes[f"nginx.ingress.kubernetes.io/{timeout}"]) >= 3600
    assert notes["nginx.ingress.kubernetes.io/proxy-body-size"] == "4m"
    assert setting(manifest_settings(), "max_body_bytes") <= 4 * 1024 * 1024
    assert ingress["spec"]["tls"] and ingress["spec"]["tls"][0]["secretName"]
    (path,) = ingress["spec"]["rules"][0]["http"]["paths"]
    service = manifests()["service.yaml"][0]
    assert path["backend"]["service"]["name"] == service["metadata"]["name"]
    assert path["backend"]["service"]["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_kustomize_renders_every_resource_with_a_pinned_image() -> None:
    rendered = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60,
                              check=True).stdout
    kinds = {doc["kind"] for doc in yaml.safe_load_all(rendered) if doc}
    assert kinds == {"ConfigMap", "Service", "Deployment", "Ingress", "HorizontalPodAutoscaler",
                     "PodDisruptionBudget"}
    images = re.findall(r"image: (\S+)", rendered)
    assert images and all(not image.endswith(":latest") and ":" in image for image in images)


# --- Dockerfile and .dockerignore ----------------------------------------------------------


def test_base_image_is_a_pinned_python_3_11_slim() -> None:
    (base,) = instructions("FROM")
    _, image = strip_flags(base)
    image = image.split()[0]
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-[a-z]+)?", image), image
    assert (ROOT / ".python-version").read_text(encoding="utf-8").strip() == "3.11"


def test_copy_sources_exist_and_are_only_what_runs() -> None:
    sources = [s for srcs, _ in copies() for s in srcs]
    for src in sources:
        assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
    top = {Path(s).parts[0] for s in sources}
    assert not top & {".", "tests", "bench", ".git", ".venv", "docs", "deploy"}, top
    assert {"app.py", "gunicorn.conf.py", "bridge", "specs", "requirements.txt"} <= top
    (workdir,) = instructions("WORKDIR")
    dest = next(d for srcs, d in copies() if "gunicorn.conf.py" in srcs)
    assert dest.rstrip("/") in (".", workdir.rstrip("/")), "gunicorn.conf.py must land in WORKDIR"


def test_dockerignore_excludes_nothing_the_image_copies() -> None:
    for srcs, _ in copies():
        for src in srcs:
            path = ROOT / src
            files = [path] if path.is_file() else [
                p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
            assert files, src
            for f in [path, *files]:
                rel = f.relative_to(ROOT).as_posix()
                assert not ignored(rel), f".dockerignore excludes {rel}, which the Dockerfile copies"
    for junk in (".git/HEAD", ".venv/bin/python", "tests/test_form.py", "bench/run.py",
                 "bridge/__pycache__/core.cpython-311.pyc"):
        assert ignored(junk), junk


def test_cmd_is_the_procfile_command_in_exec_form() -> None:
    (cmd,) = instructions("CMD")
    assert cmd.startswith("["), "exec form: gunicorn must be PID 1 to receive SIGTERM"
    assert json.loads(cmd) == procfile_web()
    assert not instructions("ENTRYPOINT")


def test_image_runs_as_a_numeric_non_root_user() -> None:
    user = instructions("USER")[-1].partition(":")[0]
    assert user.isdigit() and int(user) != 0


def test_healthcheck_calls_healthz_with_python_and_a_timeout() -> None:
    (check,) = instructions("HEALTHCHECK")
    options, _, cmd = check.partition("CMD ")
    assert "NONE" not in options.upper() and cmd
    argv = json.loads(cmd) if cmd.startswith("[") else shlex.split(cmd)
    assert argv[0].startswith("python")
    script = " ".join(argv)
    assert "/healthz" in script and "timeout" in script
    assert "curl" not in script and "wget" not in script  # not in python:slim


def test_requirements_install_from_wheels_without_a_cache() -> None:
    steps = list(dockerfile())
    (install,) = [i for i, (kw, rest) in enumerate(steps) if kw == "RUN" and "pip install" in rest]
    command = steps[install][1]
    assert "--no-cache-dir" in command and "-r requirements.txt" in command
    assert "--only-binary=:all:" in command  # every pin ships a wheel: no compiler in the image
    copied = [i for i, (kw, rest) in enumerate(steps) if kw == "COPY" and "requirements.txt" in rest]
    assert copied and copied[0] < install, "requirements.txt must be copied before pip install"


# --- app.json (Heroku) ---------------------------------------------------------------------


def test_app_json_runs_the_procfile_with_documented_valid_settings() -> None:
    manifest = json.loads((ROOT / "app.json").read_text(encoding="utf-8"))
    assert "web" in manifest["formation"]
    assert {"url": "heroku/python"} in manifest["buildpacks"]
    env = manifest["env"]
    assert env, "app.json lists the key settings"
    for name, spec in env.items():
        assert documented(name), f"app.json: {name} is not in docs/operations.md's table of settings"
        assert spec.get("description"), name
    values = {name: spec["value"] for name, spec in env.items() if "value" in spec}
    assert "UPSTREAM_MODEL" not in values, "a default model would override every caller's model"
    settings = read_settings(values)  # raises ConfigError on a bad default
    assert setting(settings, "drain_timeout") + EXIT_SLACK_S < PAAS_STOP_S
    if "success_url" in manifest:
        assert manifest["success_url"] in get_routes()


# --- docs ----------------------------------------------------------------------------------


DOCS = sorted(str(p.relative_to(ROOT)) for p in [
    ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("docs/platforms/*.md"), *ROOT.glob("bench/*.md"),
    ROOT / "specs" / "README.md", *ROOT.glob("tests/fixtures/platforms/README-*.md")])


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors for a document's headings: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", markdown, re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("doc", DOCS)
def test_doc_links_resolve(doc: str) -> None:
    """Every link to a file of the repository, and to a heading in it, points at something there."""
    path = ROOT / doc
    prose = re.sub(r"```.*?```|`[^`\n]*`", "", path.read_text(encoding="utf-8"), flags=re.S)  # code is not links
    links = re.findall(r"\]\(([^)\s]+)\)", prose)
    local = [link for link in links if "://" not in link and not link.startswith("mailto:")]
    for link in local:
        target, _, anchor = link.partition("#")
        file = (path.parent / target) if target else path
        assert file.exists(), f"{doc}: broken link {link}"
        if anchor and file.suffix == ".md":
            assert anchor in heading_anchors(file.read_text(encoding="utf-8")), f"{doc}: no heading for {link}"
