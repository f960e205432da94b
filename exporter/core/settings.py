"""Settings: one frozen object, parsed and validated once from a mapping of raw values.

Sources are merged by the caller (`__main__`), highest first: CLI flags, `SESSION_EXPORTER_*`
environment variables, a YAML file, defaults. This module never reads `os.environ` itself, so
tests can build settings from a plain dict:

    >>> parse_settings({"listen": "0.0.0.0:9000", "redis_url": "redis://localhost:6379/0"}).listen
    ('0.0.0.0', 9000)
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from exporter.core import setting_values as values
from exporter.core.errors import ConfigError
from exporter.core.redaction import redact

ENV_PREFIX = "SESSION_EXPORTER_"


@dataclass(frozen=True, slots=True)
class Option:
    """How one setting is parsed and described: derived from its `Settings` field."""

    name: str
    parse: Callable[[str, Any], Any]
    help: str  # Markdown: the README table shows it as is, `--help` without the markup
    secret: bool = False
    switch: bool = False  # a boolean flag that may stand alone
    repeatable: bool = False  # a flag that may be given several times (values accumulate)
    shown_default: str = "(none)"  # the README's default column

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def plain_help(self) -> str:
        """The help without Markdown, for `--help`: links keep their text, code its content."""
        return _LINK.sub(r"\1", self.help).replace("`", "")


_LINK = re.compile(r"\[([^]]*)\]\([^)]*\)")


def setting(
    default: Any,
    parse: Callable[[str, Any], Any],
    help: str,
    *,
    secret: bool = False,
    switch: bool = False,
    repeatable: bool = False,
    shown_default: str | None = None,
) -> Any:
    """A `Settings` field carrying everything its flag, env var, YAML key and README row need.

    A callable `default` is a factory (for mutable defaults). Secrets are left out of `repr`.
    """
    metadata = {
        "parse": parse,
        "help": help,
        "secret": secret,
        "switch": switch,
        "repeatable": repeatable,
    }
    if shown_default is not None:
        metadata["shown_default"] = shown_default
    if callable(default):
        return field(default_factory=default, repr=not secret, metadata=metadata)
    return field(default=default, repr=not secret, metadata=metadata)


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting, declared once: the field name is the YAML key, the flag and the env var
    derive from it, and its `setting()` metadata parses and documents it (`OPTIONS`)."""

    listen: tuple[str, int] = setting(
        ("127.0.0.1", 9464), values.listen, "HOST:PORT to serve on (default 127.0.0.1:9464)"
    )
    redis_url: str | None = setting(
        None,
        values.redis_url,
        "Redis URL; none = memory only"
        " (redis://, rediss://, unix://, redis+cluster://, redis+sentinel://)",
        secret=True,
    )
    redis_timeout: float = setting(
        0.25, values.seconds, "seconds one Redis command may take before it counts as failed"
    )
    redis_retry_interval: float = setting(
        0.5, values.seconds, "seconds between reconnection attempts while Redis is down"
    )
    redis_max_connections: int = setting(
        64, values.count, "Redis connections the pool may open; further requests queue for one"
    )
    redis_pool_timeout: float = setting(
        1.0,
        values.seconds,
        "seconds a request waits for a free Redis connection before `503 store_busy`"
        " (backpressure: no failover)",
    )
    redis_key_prefix: str = setting(
        "sme:", values.text, "prefix of every Redis key the exporter writes"
    )
    session_ttl: float = setting(3600.0, values.seconds, "default session lifetime in seconds")
    memory_max_entries: int = setting(
        100_000, values.count, "entries the in-process memory tier may hold"
    )
    memory_max_bytes: int = setting(
        256 * 1024 * 1024, values.count, "bytes the in-process memory tier may hold"
    )
    replay_max_entries: int = setting(
        10_000,
        values.count,
        "writes journalled for replay during a Redis outage; beyond it writes get `503` +"
        " `Retry-After`",
    )
    journal_dir: str | None = setting(
        None,
        values.optional_text,
        "directory of the crash-safe outage journal (one per process; compose, the Docker image"
        " and the Kubernetes manifests set it); none = in memory only, lost if the process dies"
        " during an outage",
    )
    max_body_bytes: int = setting(
        64 * 1024, values.count, "largest accepted request body; larger gets 413"
    )
    slow_threshold_ms: float = setting(
        100.0, values.seconds, "operations slower than this many milliseconds are slow"
    )
    window_size: int = setting(100, values.count, "response times kept per manager and operation")
    figma_api_url: str = setting(
        "https://api.figma.com", values.http_url, "Figma REST API base URL"
    )
    figma_token: str | None = setting(
        None,
        values.optional_text,
        "Figma personal access token; none = Figma API disabled",
        secret=True,
    )
    figma_oauth_token: str | None = setting(
        None,
        values.optional_text,
        "Figma OAuth access token (sent as Bearer), instead of `--figma-token`",
        secret=True,
    )
    figma_slow_threshold_ms: float = setting(
        2000.0,
        values.seconds,
        "Figma operations slower than this many milliseconds are slow"
        " (also the default of the `figma_latency_high_ms` health threshold)",
    )
    figma_timeout: float = setting(
        10.0,
        values.seconds,
        "seconds one Figma API call may take, retries included (timeouts are not retried)",
    )
    figma_max_concurrency: int = setting(8, values.count, "concurrent Figma API requests")
    figma_cache_ttl: float = setting(
        300.0,
        values.seconds,
        "seconds a cached Figma file version is used without asking Figma; then it is revalidated"
        " with `GET /v1/files/:key/meta` (Tier 2) and downloaded again only if it changed; see"
        " [docs/figma-cache.md](docs/figma-cache.md)",
    )
    figma_cache_stale_seconds: float = setting(
        60.0,
        values.seconds_or_zero,
        "seconds past `--figma-cache-ttl` a cached Figma copy is still served at once while it is"
        " revalidated in the background, or while Figma's rate limits run short; beyond it"
        " readers wait for the revalidation (0 = always wait). The worst staleness is the TTL"
        " plus this",
    )
    figma_cache_max_bytes: int | None = setting(  # None: see figma_cache_budget
        None,
        values.count,
        "memory-tier bytes for cached Figma responses; over it they evict each other,"
        " never sessions",
        shown_default="a quarter of `--memory-max-bytes`",
    )
    mcp_url: str | None = setting(
        None, values.http_url, "MCP server streamable-HTTP URL; none = MCP disabled"
    )
    mcp_token: str | None = setting(
        None,
        values.optional_text,
        "bearer token for the MCP server (the remote Figma server needs one)",
        secret=True,
    )
    mcp_timeout: float = setting(
        10.0, values.seconds, "seconds one MCP tool call may take, retries included"
    )
    probe_interval: float = setting(30.0, values.seconds, "seconds between availability probes")
    health_interval: float = setting(30.0, values.seconds, "seconds between health checks")
    snapshot_interval: float = setting(5.0, values.seconds, "seconds between real-time snapshots")
    event_log_size: int = setting(1000, values.count, "events kept in the in-process event log")
    sse_max_clients: int = setting(1000, values.count, "concurrent Server-Sent Events clients")
    fleet_publish: bool = setting(
        True,
        values.boolean,
        "with Redis, publish this replica's summary every snapshot (TTL: three snapshots, at least"
        " 15 s) and its per-session access counts, for `?scope=fleet` and the dashboard's fleet"
        " view; `false` = this replica neither publishes nor shows a fleet",
    )
    admin_token: str | None = setting(
        None,
        values.optional_text,
        "bearer token required by admin endpoints; none = open",
        secret=True,
    )
    health_thresholds: Mapping[str, float] = setting(
        lambda: MappingProxyType({}),
        values.thresholds,
        "health rule overrides, e.g. `latency_critical_ms=800,cache_hit_poor=0.4`"
        " (a mapping in YAML; names in `exporter/monitoring/health.py`; `latency_high_ms` follows"
        " `--slow-threshold-ms`; the figma manager has `figma_latency_high_ms`"
        " (2000, follows `--figma-slow-threshold-ms`) and `figma_latency_critical_ms` (5000))",
        shown_default="[docs/health.md](docs/health.md)",
    )
    shutdown_timeout: float = setting(
        10.0, values.seconds, "seconds in-flight requests get to finish on SIGTERM"
    )
    shutdown_drain: float = setting(
        0.0,
        values.seconds_or_zero,
        "seconds to keep serving with readiness 503 after SIGTERM,"
        " so load balancers stop sending first",
    )
    gc_young_threshold: int = setting(
        10_000,
        values.count,
        "allocations between the cycle collector's young collections (CPython's default: 700;"
        " see `exporter/app/gc_tuning.py`)",
    )
    log_level: str = setting("info", values.log_level, "debug, info, warning, error or critical")
    log_format: str = setting(
        "text",
        values.choice(values.LOG_FORMATS),
        "`text`, or `json`: one object per line with `time`, `level`, `logger`, `message`"
        " and the record's structured fields; secrets, a URL's userinfo and its secret query"
        " options (`password`, `sentinel_password`, `token`...) are masked as `***` in both",
    )
    access_log: bool = setting(
        False,
        values.boolean,
        "one line per request on logger `exporter.access` (fields `method`, `path` without"
        " query string and with a session id replaced by `sha256:` and 12 hex digits of its"
        " digest, `status`, `duration_ms`, `remote`, `user_agent`), in the `--log-format`;"
        " `--access-log` alone means true",
        switch=True,
    )
    web_config_file: str | None = setting(
        None,
        values.optional_text,
        "Prometheus exporter-toolkit web configuration (TLS, client certificates, bcrypt basic"
        " auth, response headers), re-read when it changes; see"
        " [docs/web-config.md](docs/web-config.md)",
    )
    web_allowed_host: tuple[str, ...] = setting(
        (),
        values.host_names,
        "more `Host` names the exporter answers to, besides IP addresses, `localhost` and the"
        " `--listen` host: the names clients and a reverse proxy use (`exporter.example.com`;"
        " `.example.com` for a domain and its subdomains; `*` for any, only behind a proxy that"
        " checks `Host` itself); repeatable or comma-separated. Other names get `403`"
        " `host_not_allowed` on every route but `/metrics`, `/-/healthy` and `/-/ready`"
        " (DNS rebinding)",
        repeatable=True,
    )
    web_header_timeout: float = setting(
        10.0,
        values.seconds,
        "seconds a client has from the first byte of a request to the end of its headers (and"
        " for a TLS handshake); a slower one gets `408` and is closed",
    )
    web_body_timeout: float = setting(
        30.0,
        values.seconds,
        "seconds a client has from the end of a request's headers to the end of its body; a"
        " slower one gets `408` and is closed",
    )
    web_max_connections: int | None = setting(
        None,
        values.optional_count,
        "open client connections in total; at the limit a new one replaces the connection idle"
        " or sending its headers for longest, or is refused if none is",
        shown_default="auto: ¾ of the open-files limit, at most 16384",
    )
    web_max_connections_per_client: int = setting(
        256,
        values.count_or_zero,
        "open connections from one client address (IP); more are refused; 0 = no limit (raise"
        " it behind a reverse proxy or NAT, where many clients share one address)",
    )

    @property
    def redis_url_redacted(self) -> str | None:
        """The Redis URL with its password, token and secret query options masked (`redact`):
        what the start-up log lines and the persistence report show."""
        return redact(self.redis_url) if self.redis_url else None

    @property
    def figma_cache_budget(self) -> int:
        """Bytes of the memory tier Figma responses may use (the rest stays for sessions)."""
        return self.figma_cache_max_bytes or self.memory_max_bytes // 4

    @property
    def figma_enabled(self) -> bool:
        return bool(self.figma_token or self.figma_oauth_token)

    @property
    def mcp_enabled(self) -> bool:
        return bool(self.mcp_url)


def _shown(value: Any) -> str:
    """A default as the README's table shows it."""
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):  # the listen address; an empty list
        return ":".join(map(str, value)) if value else "(none)"
    return str(value)


def _option(spec: dataclasses.Field[Any]) -> Option:
    meta = dict(spec.metadata)
    if "shown_default" not in meta:
        meta["shown_default"] = _shown(spec.default)
    return Option(name=spec.name, **meta)


OPTIONS: tuple[Option, ...] = tuple(_option(spec) for spec in dataclasses.fields(Settings))
OPTIONS_BY_NAME = {option.name: option for option in OPTIONS}


def parse_settings(values: Mapping[str, Any]) -> Settings:
    """Raw values (strings or YAML scalars) → Settings; ConfigError names a bad setting."""
    parsed: dict[str, Any] = {}
    for key, raw in values.items():
        name = key.replace("-", "_")
        option = OPTIONS_BY_NAME.get(name)
        if option is None:
            close = difflib.get_close_matches(name, OPTIONS_BY_NAME, n=1)
            raise ConfigError(
                key, "unknown setting" + (f"; did you mean {close[0]}?" if close else "")
            )
        if raw is not None:
            parsed[name] = option.parse(option.flag, raw)
    settings = Settings(**parsed)
    _check_consistency(settings)
    return settings


def _check_consistency(settings: Settings) -> None:
    if settings.memory_max_bytes < settings.max_body_bytes:
        raise ConfigError("--memory-max-bytes", "must be at least --max-body-bytes")
    if settings.figma_cache_budget > settings.memory_max_bytes:
        raise ConfigError("--figma-cache-max-bytes", "must be at most --memory-max-bytes")


# The command line's own flags (`exporter.app.cli`): README rows, but not settings.
COMMAND_ROWS = (
    (
        "`--config`",
        f"`{ENV_PREFIX}CONFIG`",
        "(none)",
        "YAML file of settings: keys are the flag names with `_` or `-` (`redis_url: ...`);"
        " flags beat environment beats this file",
    ),
    ("`--version`", "", "", "prints the version and, when known, the git revision"),
)
TABLE_HEADER = "| flag | environment | default | meaning |\n|---|---|---|---|\n"
SECRET_NOTE = " — secret: never logged, exported or returned"


def readme_table() -> str:
    """The README's flag table, generated from `OPTIONS` (a test fails when the README drifts)."""
    rows = [
        (f"`{o.flag}`", f"`{o.env}`", o.shown_default, o.help + (SECRET_NOTE if o.secret else ""))
        for o in OPTIONS
    ]
    return TABLE_HEADER + "".join(_row(cells) for cells in (*rows, *COMMAND_ROWS))


def readme_with_table(readme: str) -> str:
    """The README text with its flag table (header to the first blank line) regenerated."""
    start = readme.index(TABLE_HEADER)
    end = readme.index("\n\n", start) + 1
    return readme[:start] + readme_table() + readme[end:]


def _row(cells: tuple[str, ...]) -> str:
    return "|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|\n"
