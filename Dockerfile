# voice-llm-bridge: the Procfile's web process in a container.
#
#   docker build -t voice-llm-bridge .
#   docker run --rm -p 8080:8080 --cpus 2 -e WEB_CONCURRENCY=2 \
#     -e OPENAI_BASE_URL=... -e OPENAI_API_KEY=... -e BRIDGE_TOKENS=... voice-llm-bridge
#
# - WEB_CONCURRENCY: set it to the CPUs the container may use. Unset, gunicorn.conf.py starts one
#   worker per CPU the process can *see*, which in a container is usually the whole host's.
# - Stopping: the bridge drains for DRAIN_TIMEOUT (25 s) after SIGTERM, but `docker stop` kills
#   after 10 s unless told otherwise: `docker stop -t 30`, `docker run --stop-timeout 30`, or
#   `stop_grace_period: 30s` in Compose.
# - Read-only root filesystem (`docker run --read-only`): add `--tmpfs /tmp`; the Prometheus
#   multiprocess files (and a read-only KNOWLEDGE_DIR's index) are written there.
# - gunicorn's master is PID 1: it handles SIGTERM and reaps its workers, so no init is needed.
#
# Every pinned requirement ships manylinux wheels for CPython 3.11 (x86_64 and aarch64), so no
# compiler is installed; --only-binary makes a dependency without a wheel fail the build loudly.

FROM python:3.11.14-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PORT=8080

WORKDIR /app

# Dependencies first: this layer is rebuilt only when requirements.txt changes.
COPY requirements.txt ./
RUN pip install --no-cache-dir --only-binary=:all: -r requirements.txt

# Only what runs: no tests, bench or docs.
COPY Procfile app.py gunicorn.conf.py ./
COPY bridge/ bridge/
COPY specs/ specs/

# Byte-compile now (as root): at run time the filesystem may be read-only.
RUN python -m compileall -q app.py gunicorn.conf.py bridge \
    && groupadd --system --gid 10001 bridge \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin bridge

# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001

EXPOSE 8080

# Liveness only (/healthz never calls an upstream). slim has no curl: the standard library does it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8080'), timeout=3)"]

# Exactly the Procfile's `web:` command.
CMD ["python", "-m", "bridge"]
