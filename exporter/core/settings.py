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
from urllib.parse import urlsplit

from exporter.core.errors import ConfigError
from exporter.core.redaction import redact

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
    if not sep or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
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
_count_or_zero = _number(int, exclusive=False)
# A host name (or `.suffix` for a domain and its subdomains, or `*`), without scheme or port.
_HOST_NAME = re.compile(r"\*|\.?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?")


def _host_names(name: str, raw: Any) -> tuple[str, ...]:
    """Names from a list (YAML, a repeated flag) and/or comma-separated text."""
    items = raw if isinstance(raw, list | tuple) else [raw]
    names: list[str] = []
    for item in items:
        for piece in str(item).split(","):
            host = piece.strip().lower()
            if host.startswith("*."):  # the usual wildcard spelling of `.domain`
                host = host[1:]
            if not host:
                continue
            if not _HOST_NAME.fullmatch(host):
                raise ConfigError(
                    name,
                    f"expected host names without scheme or port (or .domain, or *), got {host!r}",
                )
            names.append(host)
    return tuple(dict.fromkeys(names))


def _optional_count(name: str, raw: Any) -> int | None:
    if isinstance(raw, str) and raw.strip().lower() in ("", "auto"):
        return None
    parsed: int = _count(name, raw)
    return parsed


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting, declared once: the field name is the YAML key, the flag and the env var
    derive from it, and its `setting()` metadata parses and documents it (`OPTIONS`)."""

    listen: tuple[str, int] = setting(
        ("127.0.0.1", 9464), _listen, "HOST:PORT to serve on (default 127.0.0.1:9464)"
    )
    redis_url: str | None = setting(
        None,
        _redis_url,
        "Redis URL; none = memory only"
        " (redis://, rediss://, unix://, redis+cluster://, redis+sentinel://)",
        secret=True,
    )
    redis_timeout: float = setting(
        0.25, _seconds, "seconds one Redis command may take before it counts as failed"
    )
    redis_retry_interval: float = setting(
        0.5, _seconds, "seconds between reconnection attempts while Redis is down"
    )
    redis_max_connections: int = setting(
        64, _count, "Redis connections the pool may open; further requests queue for one"
    )
    redis_pool_timeout: float = setting(
        1.0,
        _seconds,
        "seconds a request waits for a free Redis connection before `503 store_busy`"
        " (backpressure: no failover)",
    )
    redis_key_prefix: str = setting("sme:", _text, "prefix of every Redis key the exporter writes")
    session_ttl: float = setting(3600.0, _seconds, "default session lifetime in seconds")
    memory_max_entries: int = setting(
        100_000, _count, "entries the in-process memory tier may hold"
    )
    memory_max_bytes: int = setting(
        256 * 1024 * 1024, _count, "bytes the in-process memory tier may hold"
    )
    replay_max_entries: int = setting(
        10_000,
        _count,
        "writes journalled for replay during a Redis outage; beyond it writes get `503` +"
        " `Retry-After`",
    )
    journal_dir: str | None = setting(
        None,
        _optional_text,
        "directory of the crash-safe outage journal (one per process; compose, the Docker image"
        " and the Kubernetes manifests set it); none = in memory only, lost if the process dies"
        " during an outage",
    )
    max_body_bytes: int = setting(
        64 * 1024, _count, "largest accepted request body; larger gets 413"
    )
    slow_threshold_ms: float = setting(
        100.0, _seconds, "operations slower than this many milliseconds are slow"
    )
    window_size: int = setting(100, _count, "response times kept per manager and operation")
    figma_api_url: str = setting("https://api.figma.com", _http_url, "Figma REST API base URL")
    figma_token: str | None = setting(
        None,
        _optional_text,
        "Figma personal access token; none = Figma API disabled",
        secret=True,
    )
    figma_oauth_token: str | None = setting(
        None,
        _optional_text,
        "Figma OAuth access token (sent as Bearer), instead of `--figma-token`",
        secret=True,
    )
    figma_slow_threshold_ms: float = setting(
        2000.0,
        _seconds,
        "Figma operations slower than this many milliseconds are slow"
        " (also the default of the `figma_latency_high_ms` health threshold)",
    )
    figma_timeout: float = setting(
        10.0,
        _seconds,
        "seconds one Figma API call may take, retries included (timeouts are not retried)",
    )
    figma_max_concurrency: int = setting(8, _count, "concurrent Figma API requests")
    figma_cache_ttl: float = setting(300.0, _seconds, "seconds Figma responses stay cached")
    figma_cache_max_bytes: int | None = setting(  # None: see figma_cache_budget
        None,
        _count,
        "memory-tier bytes for cached Figma responses; over it they evict each other,"
        " never sessions",
        shown_default="a quarter of `--memory-max-bytes`",
    )
    mcp_url: str | None = setting(
        None, _http_url, "MCP server streamable-HTTP URL; none = MCP disabled"
    )
    mcp_token: str | None = setting(
        None,
        _optional_text,
        "bearer token for the MCP server (the remote Figma server needs one)",
        secret=True,
    )
    mcp_timeout: float = setting(
        10.0, _seconds, "seconds one MCP tool call may take, retries included"
    )
    probe_interval: float = setting(30.0, _seconds, "seconds between availability probes")
    health_interval: float = setting(30.0, _seconds, "seconds between health checks")
    snapshot_interval: float = setting(5.0, _seconds, "seconds between real-time snapshots")
    event_log_size: int = setting(1000, _count, "events kept in the in-process event log")
    sse_max_clients: int = setting(1000, _count, "concurrent Server-Sent Events clients")
    admin_token: str | None = setting(
        None,
        _optional_text,
        "bearer token required by admin endpoints; none = open",
        secret=True,
    )
    health_thresholds: Mapping[str, float] = setting(
        lambda: MappingProxyType({}),
        _thresholds,
        "health rule overrides, e.g. `latency_critical_ms=800,cache_hit_poor=0.4`"
        " (a mapping in YAML; names in `exporter/monitoring/health.py`; `latency_high_ms` follows"
        " `--slow-threshold-ms`; the figma manager has `figma_latency_high_ms`"
        " (2000, follows `--figma-slow-threshold-ms`) and `figma_latency_critical_ms` (5000))",
        shown_default="[docs/health.md](docs/health.md)",
    )
    shutdown_timeout: float = setting(
        10.0, _seconds, "seconds in-flight requests get to finish on SIGTERM"
    )
    shutdown_drain: float = setting(
        0.0,
        _seconds_or_zero,
        "seconds to keep serving with readiness 503 after SIGTERM,"
        " so load balancers stop sending first",
    )
    gc_young_threshold: int = setting(
        10_000,
        _count,
        "allocations between the cycle collector's young collections (CPython's default: 700;"
        " see `exporter/app/gc_tuning.py`)",
    )
    log_level: str = setting("info", _log_level, "debug, info, warning, error or critical")
    log_format: str = setting(
        "text",
        _choice(LOG_FORMATS),
        "`text`, or `json`: one object per line with `time`, `level`, `logger`, `message`"
        " and the record's structured fields; secrets, a URL's userinfo and its secret query"
        " options (`password`, `sentinel_password`, `token`...) are masked as `***` in both",
    )
    access_log: bool = setting(
        False,
        _boolean,
        "one line per request on logger `exporter.access` (fields `method`, `path` without"
        " query string and with a session id replaced by `sha256:` and 12 hex digits of its"
        " digest, `status`, `duration_ms`, `remote`, `user_agent`), in the `--log-format`;"
        " `--access-log` alone means true",
        switch=True,
    )
    web_config_file: str | None = setting(
        None,
        _optional_text,
        "Prometheus exporter-toolkit web configuration (TLS, client certificates, bcrypt basic"
        " auth, response headers), re-read when it changes; see"
        " [docs/web-config.md](docs/web-config.md)",
    )
    web_allowed_host: tuple[str, ...] = setting(
        (),
        _host_names,
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
        _seconds,
        "seconds a client has from the first byte of a request to the end of its headers (and"
        " for a TLS handshake); a slower one gets `408` and is closed",
    )
    web_body_timeout: float = setting(
        30.0,
        _seconds,
        "seconds a client has from the end of a request's headers to the end of its body; a"
        " slower one gets `408` and is closed",
    )
    web_max_connections: int | None = setting(
        None,
        _optional_count,
        "open client connections in total; at the limit a new one replaces the connection idle"
        " or sending its headers for longest, or is refused if none is",
        shown_default="auto: ¾ of the open-files limit, at most 16384",
    )
    web_max_connections_per_client: int = setting(
        256,
        _count_or_zero,
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
