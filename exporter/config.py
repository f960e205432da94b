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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from exporter.errors import ConfigError

ENV_PREFIX = "SESSION_EXPORTER_"
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("text", "json")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")
REDIS_SCHEMES = (
    "redis",
    "rediss",
    "unix",
    "redis+cluster",
    "rediss+cluster",
    "redis+sentinel",
    "rediss+sentinel",
)


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting. Field names are the YAML keys; flags and env vars derive from them."""

    listen: tuple[str, int] = ("127.0.0.1", 9464)
    redis_url: str | None = field(default=None, repr=False)
    redis_timeout: float = 0.25
    redis_retry_interval: float = 0.5
    redis_max_connections: int = 64
    redis_pool_timeout: float = 1.0
    redis_key_prefix: str = "sme:"
    session_ttl: float = 3600.0
    memory_max_entries: int = 100_000
    memory_max_bytes: int = 256 * 1024 * 1024
    replay_max_entries: int = 10_000
    journal_dir: str | None = None
    max_body_bytes: int = 64 * 1024
    slow_threshold_ms: float = 100.0
    window_size: int = 100
    figma_api_url: str = "https://api.figma.com"
    figma_token: str | None = field(default=None, repr=False)
    figma_oauth_token: str | None = field(default=None, repr=False)
    figma_slow_threshold_ms: float = 2000.0
    figma_timeout: float = 10.0
    figma_max_concurrency: int = 8
    figma_cache_ttl: float = 300.0
    figma_cache_max_bytes: int | None = None  # None: a quarter of memory_max_bytes
    mcp_url: str | None = None
    mcp_token: str | None = field(default=None, repr=False)
    mcp_timeout: float = 10.0
    probe_interval: float = 30.0
    health_interval: float = 30.0
    snapshot_interval: float = 5.0
    event_log_size: int = 1000
    sse_max_clients: int = 1000
    admin_token: str | None = field(default=None, repr=False)
    health_thresholds: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    shutdown_timeout: float = 10.0
    shutdown_drain: float = 0.0
    log_level: str = "info"
    log_format: str = "text"
    access_log: bool = False
    web_config_file: str | None = None

    @property
    def redis_url_redacted(self) -> str | None:
        """The Redis URL with any password replaced, safe to log and show."""
        return redact_url(self.redis_url) if self.redis_url else None

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


@dataclass(frozen=True, slots=True)
class Option:
    """How one setting is parsed and described on the command line."""

    name: str
    parse: Callable[[str, Any], Any]
    help: str
    secret: bool = False
    switch: bool = False  # a boolean flag that may stand alone

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


def redact_userinfo(url: str) -> str:
    """The URL without any user name or password: what may be logged of an HTTP URL."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    hosts = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, "***@" + hosts, parts.path, parts.query, parts.fragment))


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    # The host part as written: Cluster/Sentinel URLs list several host:port pairs.
    hosts = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + hosts, parts.path, parts.query, parts.fragment))


def _number(kind: type, *, minimum: float = 0, exclusive: bool = True) -> Callable[[str, Any], Any]:
    def parse(name: str, raw: Any) -> Any:
        try:
            value = kind(raw)
        except (TypeError, ValueError):
            raise ConfigError(name, f"expected a number, got {raw!r}") from None
        if value < minimum or (exclusive and value == minimum):
            bound = f"greater than {minimum}" if exclusive else f"at least {minimum}"
            raise ConfigError(name, f"must be {bound}, got {raw!r}")
        return value

    return parse


def _listen(name: str, raw: Any) -> tuple[str, int]:
    host, sep, port = str(raw).rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(name, f"expected HOST:PORT with a port in 1-65535, got {raw!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def _optional_text(name: str, raw: Any) -> str | None:
    text = str(raw).strip() if raw is not None else ""
    return text or None


def _text(name: str, raw: Any) -> str:
    text = str(raw).strip()
    if not text:
        raise ConfigError(name, "must not be empty")
    return text


def _http_url(name: str, raw: Any) -> str | None:
    url = _optional_text(name, raw)
    if url is not None and urlsplit(url).scheme not in ("http", "https"):
        raise ConfigError(name, "expected an http:// or https:// URL")
    return url.rstrip("/") if url else None


def _redis_url(name: str, raw: Any) -> str | None:
    url = _optional_text(name, raw)
    if url is None:
        return None
    try:
        scheme = urlsplit(url).scheme
    except ValueError:  # e.g. an unclosed "[" in the host; never echo the URL (a password)
        raise ConfigError(name, "malformed URL (check the host part)") from None
    if scheme not in REDIS_SCHEMES:
        # Never echo the URL: it may carry a password.
        raise ConfigError(
            name, f"unsupported scheme {scheme!r}; expected one of {', '.join(REDIS_SCHEMES)}"
        )
    return url


def _thresholds(name: str, raw: Any) -> Mapping[str, float]:
    """A YAML mapping, or `key=value,key=value` from a flag or environment variable."""
    if isinstance(raw, str):
        pairs = [item.partition("=") for item in raw.split(",") if item.strip()]
        if any(not sep for _, sep, _ in pairs):
            raise ConfigError(name, "expected key=value pairs separated by commas")
        raw = {key.strip(): value.strip() for key, _, value in pairs}
    if not isinstance(raw, Mapping):
        raise ConfigError(name, "expected a mapping of threshold names to numbers")
    parse = _number(float, exclusive=False)
    return MappingProxyType({str(key): parse(f"{name}.{key}", value) for key, value in raw.items()})


def _log_level(name: str, raw: Any) -> str:
    level = str(raw).strip().lower()
    if level not in LOG_LEVELS:
        raise ConfigError(name, f"expected one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    return level


def _choice(choices: tuple[str, ...]) -> Callable[[str, Any], str]:
    def parse(name: str, raw: Any) -> str:
        value = str(raw).strip().lower()
        if value not in choices:
            raise ConfigError(name, f"expected one of {', '.join(choices)}, got {raw!r}")
        return value

    return parse


def _boolean(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    value = str(raw).strip().lower()
    if value in _TRUE or value in _FALSE:
        return value in _TRUE
    raise ConfigError(name, f"expected true or false, got {raw!r}")


_seconds = _number(float)
_seconds_or_zero = _number(float, exclusive=False)
_count = _number(int)

OPTIONS: tuple[Option, ...] = (
    Option("listen", _listen, "HOST:PORT to serve on (default 127.0.0.1:9464)"),
    Option(
        "redis_url",
        _redis_url,
        "Redis URL; none = memory only (redis://, rediss://, unix://, redis+cluster://, redis+sentinel://)",
        secret=True,
    ),
    Option(
        "redis_timeout", _seconds, "seconds one Redis command may take before it counts as failed"
    ),
    Option(
        "redis_retry_interval",
        _seconds,
        "seconds between reconnection attempts while Redis is down",
    ),
    Option(
        "redis_max_connections",
        _count,
        "Redis connections the pool may open; further requests queue for one",
    ),
    Option(
        "redis_pool_timeout",
        _seconds,
        "seconds a request waits for a free Redis connection before 503 store_busy"
        " (backpressure: no failover)",
    ),
    Option("redis_key_prefix", _text, "prefix of every Redis key the exporter writes"),
    Option("session_ttl", _seconds, "default session lifetime in seconds"),
    Option("memory_max_entries", _count, "entries the in-process memory tier may hold"),
    Option("memory_max_bytes", _count, "bytes the in-process memory tier may hold"),
    Option(
        "replay_max_entries",
        _count,
        "writes journalled for replay during a Redis outage; beyond it writes get 503",
    ),
    Option(
        "journal_dir",
        _optional_text,
        "directory of the crash-safe outage journal (one per process); none = in memory only,"
        " lost if the process dies during an outage",
    ),
    Option("max_body_bytes", _count, "largest accepted request body; larger gets 413"),
    Option("slow_threshold_ms", _seconds, "operations slower than this many milliseconds are slow"),
    Option("window_size", _count, "response times kept per manager and operation"),
    Option("figma_api_url", _http_url, "Figma REST API base URL"),
    Option(
        "figma_token",
        _optional_text,
        "Figma personal access token; none = Figma API disabled",
        secret=True,
    ),
    Option(
        "figma_oauth_token",
        _optional_text,
        "Figma OAuth access token (sent as Bearer), instead of --figma-token",
        secret=True,
    ),
    Option(
        "figma_slow_threshold_ms",
        _seconds,
        "Figma operations slower than this many milliseconds are slow",
    ),
    Option("figma_timeout", _seconds, "seconds one Figma API call may take, retries included"),
    Option("figma_max_concurrency", _count, "concurrent Figma API requests"),
    Option("figma_cache_ttl", _seconds, "seconds Figma responses stay cached"),
    Option(
        "figma_cache_max_bytes",
        _count,
        "memory-tier bytes for cached Figma responses (default: a quarter of --memory-max-bytes)",
    ),
    Option("mcp_url", _http_url, "MCP server streamable-HTTP URL; none = MCP disabled"),
    Option(
        "mcp_token",
        _optional_text,
        "bearer token for the MCP server (the remote Figma server needs one)",
        secret=True,
    ),
    Option("mcp_timeout", _seconds, "seconds one MCP tool call may take, retries included"),
    Option("probe_interval", _seconds, "seconds between availability probes"),
    Option("health_interval", _seconds, "seconds between health checks"),
    Option("snapshot_interval", _seconds, "seconds between real-time snapshots"),
    Option("event_log_size", _count, "events kept in the in-process event log"),
    Option("sse_max_clients", _count, "concurrent Server-Sent Events clients"),
    Option(
        "admin_token",
        _optional_text,
        "bearer token required by admin endpoints; none = open",
        secret=True,
    ),
    Option(
        "health_thresholds",
        _thresholds,
        "health rule overrides, e.g. latency_critical_ms=800,cache_hit_poor=0.4"
        " (names in exporter/health.py)",
    ),
    Option("shutdown_timeout", _seconds, "seconds in-flight requests get to finish on SIGTERM"),
    Option(
        "shutdown_drain",
        _seconds_or_zero,
        "seconds to keep serving with readiness 503 after SIGTERM,"
        " so load balancers stop sending first",
    ),
    Option("log_level", _log_level, "debug, info, warning, error or critical"),
    Option("log_format", _choice(LOG_FORMATS), "text, or json: one JSON object per line"),
    Option(
        "access_log",
        _boolean,
        "log one line per HTTP request (method, path without query, status, duration)",
        switch=True,
    ),
    Option(
        "web_config_file",
        _optional_text,
        "exporter-toolkit web configuration file: TLS, basic auth, headers (docs/web-config.md)",
    ),
)
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


def settings_names() -> list[str]:
    return [f.name for f in dataclasses.fields(Settings)]
