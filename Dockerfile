# session-metrics-exporter image: the exporter alone, running as an unprivileged user.
#   docker build -t session-metrics-exporter .
#   docker run -p 127.0.0.1:9464:9464 session-metrics-exporter --listen 0.0.0.0:9464 --redis-url redis://host:6379/0
# Settings come from flags or SESSION_EXPORTER_* environment variables (see README).
# It listens on 0.0.0.0 inside the container (its loopback is unreachable from outside): publish the
# port only where it is needed, or mount a --web-config-file with TLS and basic auth
# (docs/web-config.md). Build with --build-arg REVISION=$(git rev-parse --short=12 HEAD) so
# --version and session_exporter_build_info carry the revision.

FROM python:3.11-slim AS build
WORKDIR /src
# uv (pinned, hash-checked) only reads the lock here; pip installs what it lists.
COPY scripts/uv-requirements.txt ./scripts/
RUN pip install --no-cache-dir --require-hashes -r scripts/uv-requirements.txt
COPY pyproject.toml uv.lock README.md ./
COPY exporter ./exporter
# Exactly the tested versions, hash-checked: `--locked` stops the build when pyproject.toml and
# uv.lock disagree. Wheels for every dependency (uvloop included: the `speed` extra) and the package.
RUN uv export --locked --quiet --no-emit-project --extra speed -o requirements.txt \
    && pip wheel --no-cache-dir --require-hashes --no-deps -r requirements.txt --wheel-dir /wheels \
    && pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ARG REVISION=unknown
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SESSION_EXPORTER_REVISION=$REVISION
RUN groupadd --system --gid 10001 exporter \
    && useradd --system --uid 10001 --gid exporter --no-create-home --shell /usr/sbin/nologin exporter
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
# The journal directory (--journal-dir), owned by the exporter's user: a named volume or an
# emptyDir mounted here starts with this ownership, so the unprivileged process can write to it.
RUN mkdir -p /var/lib/session-exporter/journal \
    && chown -R 10001:10001 /var/lib/session-exporter
VOLUME ["/var/lib/session-exporter/journal"]
USER 10001:10001
EXPOSE 9464
# Liveness only (/-/healthy); orchestrators that route traffic should also watch /-/ready.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/-/healthy', timeout=2)"]
ENTRYPOINT ["session-metrics-exporter"]
CMD ["--listen", "0.0.0.0:9464"]
