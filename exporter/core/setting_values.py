"""How a setting's raw value (a flag's text, an environment variable, a YAML value) becomes a
typed value: one parser per kind, each raising `ConfigError` with the setting's name and never
echoing a value that may hold a secret.

    >>> listen("listen", "[::1]:9464")
    ('::1', 9464)
    >>> seconds("redis_timeout", "0.5")
    0.5
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from exporter.core.errors import ConfigError

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("text", "json")
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off", "")
REDIS_SCHEMES = (
    "redis",
    "rediss",
    "unix",
    "redis+cluster",
    "rediss+cluster",
    "redis+sentinel",
    "rediss+sentinel",
)


def number(kind: type, *, minimum: float = 0, exclusive: bool = True) -> Callable[[str, Any], Any]:
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


def listen(name: str, raw: Any) -> tuple[str, int]:
    host, sep, port = str(raw).rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ConfigError(name, f"expected HOST:PORT with a port in 1-65535, got {raw!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def optional_text(name: str, raw: Any) -> str | None:
    text = str(raw).strip() if raw is not None else ""
    return text or None


def text(name: str, raw: Any) -> str:
    text = str(raw).strip()
    if not text:
        raise ConfigError(name, "must not be empty")
    return text


def http_url(name: str, raw: Any) -> str | None:
    url = optional_text(name, raw)
    if url is not None and urlsplit(url).scheme not in ("http", "https"):
        raise ConfigError(name, "expected an http:// or https:// URL")
    return url.rstrip("/") if url else None


def redis_url(name: str, raw: Any) -> str | None:
    url = optional_text(name, raw)
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


def thresholds(name: str, raw: Any) -> Mapping[str, float]:
    """A YAML mapping, or `key=value,key=value` from a flag or environment variable."""
    if isinstance(raw, str):
        pairs = [item.partition("=") for item in raw.split(",") if item.strip()]
        if any(not sep for _, sep, _ in pairs):
            raise ConfigError(name, "expected key=value pairs separated by commas")
        raw = {key.strip(): value.strip() for key, _, value in pairs}
    if not isinstance(raw, Mapping):
        raise ConfigError(name, "expected a mapping of threshold names to numbers")
    parse = number(float, exclusive=False)
    return MappingProxyType({str(key): parse(f"{name}.{key}", value) for key, value in raw.items()})


def log_level(name: str, raw: Any) -> str:
    level = str(raw).strip().lower()
    if level not in LOG_LEVELS:
        raise ConfigError(name, f"expected one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    return level


def choice(choices: tuple[str, ...]) -> Callable[[str, Any], str]:
    def parse(name: str, raw: Any) -> str:
        value = str(raw).strip().lower()
        if value not in choices:
            raise ConfigError(name, f"expected one of {', '.join(choices)}, got {raw!r}")
        return value

    return parse


def boolean(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    value = str(raw).strip().lower()
    if value in TRUE or value in FALSE:
        return value in TRUE
    raise ConfigError(name, f"expected true or false, got {raw!r}")


seconds = number(float)
seconds_or_zero = number(float, exclusive=False)
count = number(int)
count_or_zero = number(int, exclusive=False)
# A host name (or `.suffix` for a domain and its subdomains, or `*`), without scheme or port.
HOST_NAME = re.compile(r"\*|\.?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?")


def host_names(name: str, raw: Any) -> tuple[str, ...]:
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
            if not HOST_NAME.fullmatch(host):
                raise ConfigError(
                    name,
                    f"expected host names without scheme or port (or .domain, or *), got {host!r}",
                )
            names.append(host)
    return tuple(dict.fromkeys(names))


def optional_count(name: str, raw: Any) -> int | None:
    if isinstance(raw, str) and raw.strip().lower() in ("", "auto"):
        return None
    parsed: int = count(name, raw)
    return parsed
