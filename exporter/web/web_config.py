"""`--web-config-file`: the Prometheus exporter-toolkit web configuration format.

    tls_server_config:
      cert_file: server.crt            # relative paths are relative to this file
      key_file: server.key
      client_ca_file: ca.crt           # optional: verify client certificates against it
      client_auth_type: RequireAndVerifyClientCert
      min_version: TLS12               # TLS10 .. TLS13; max_version too
    http_server_config:
      headers: {Strict-Transport-Security: max-age=31536000}
    basic_auth_users:
      prometheus: $2b$12$...           # bcrypt hash (htpasswd -nBC 12 prometheus)

Parsing is pure (a mapping in, a WebConfig or a ConfigError naming the field out); building the
SSL context reads the certificate files. See docs/web-config.md for which endpoints stay open.
"""

from __future__ import annotations

import difflib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from exporter.core.errors import ConfigError

FLAG = "--web-config-file"
TOP_LEVEL = ("tls_server_config", "http_server_config", "basic_auth_users")
TLS_KEYS = (
    "cert_file",
    "key_file",
    "client_ca_file",
    "client_auth_type",
    "min_version",
    "max_version",
)
# Keys of the format this exporter does not implement: refused by name rather than ignored, so
# nobody believes a cipher list or SAN allow-list protects them when it does not.
TLS_UNSUPPORTED = (
    "cipher_suites",
    "curve_preferences",
    "prefer_server_cipher_suites",
    "client_allowed_sans",
    "cert",
    "key",
    "client_ca",
)
HTTP_KEYS = ("headers", "http2")
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# Go's tls.ClientAuthType names. Python's ssl module verifies any certificate it asks for, so the
# two Go modes that accept unverified certificates (RequestClientCert, RequireAnyClientCert)
# cannot be honoured and are refused.
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
# The headers exporter-toolkit allows; others (Content-Type, Set-Cookie...) would break responses.
ALLOWED_HEADERS = (
    "Strict-Transport-Security",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "X-XSS-Protection",
    "Content-Security-Policy",
)
BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")


@dataclass(frozen=True, slots=True)
class TlsConfig:
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    client_auth_type: str = "NoClientCert"
    min_version: str = "TLS12"
    max_version: str | None = None


@dataclass(frozen=True, slots=True)
class WebConfig:
    tls: TlsConfig | None = None
    users: Mapping[str, bytes] = field(default_factory=lambda: MappingProxyType({}))
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def auth_required(self) -> bool:
        return bool(self.users)


def _error(path: str, message: str) -> ConfigError:
    return ConfigError(f"{FLAG} {path}", message)


def _unknown(path: str, key: object, known: tuple[str, ...]) -> ConfigError:
    close = difflib.get_close_matches(str(key), known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; expected one of {', '.join(known)}"
    return _error(f"{path}{key}", f"unknown field{hint}")


def _mapping(raw: Any, path: str) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _error(path, "must be a mapping")
    return raw


def _string(raw: Any, path: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise _error(path, "must be a non-empty string")
    return raw.strip()


def load_web_config(path: str) -> WebConfig:
    """Read and parse the file; ConfigError names the file or the bad field."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(FLAG, f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(FLAG, f"{path} is not UTF-8 text") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(FLAG, f"{path} is not valid YAML{where}") from None
    return parse_web_config(raw, Path(path).resolve().parent)


def parse_web_config(raw: Any, base: Path) -> WebConfig:
    top = _mapping(raw, "")
    for key in top:
        if key not in TOP_LEVEL:
            raise _unknown("", key, TOP_LEVEL)
    tls_raw = top.get("tls_server_config")
    return WebConfig(
        tls=_tls(_mapping(tls_raw, "tls_server_config"), base) if tls_raw else None,
        users=_users(_mapping(top.get("basic_auth_users"), "basic_auth_users")),
        headers=_headers(_mapping(top.get("http_server_config"), "http_server_config")),
    )


def check_reload(current: WebConfig, new: WebConfig, *, serving_tls: bool) -> None:
    """Refuse a re-read file that would take away a protection the running server has.

    Turning basic auth or TLS off takes a restart: a file rewritten in place is empty for a
    moment (or holds only `basic_auth_users:`), and that moment must not open the exporter.
    """
    if current.auth_required and not new.auth_required:
        raise _error(
            "basic_auth_users",
            "no users, but basic auth is on: turning authentication off takes a restart",
        )
    if serving_tls and new.tls is None:
        raise _error("tls_server_config", "missing, but TLS is on: turning TLS off takes a restart")


def _tls(raw: Mapping[str, Any], base: Path) -> TlsConfig:
    for key in raw:
        if key in TLS_UNSUPPORTED:
            raise _error(f"tls_server_config.{key}", "not supported by this exporter")
        if key not in TLS_KEYS:
            raise _unknown("tls_server_config.", key, TLS_KEYS)
    files: dict[str, Path | None] = {}
    for key in ("cert_file", "key_file", "client_ca_file"):
        value = raw.get(key)
        if value is None:
            files[key] = None
            continue
        file = base / _string(value, f"tls_server_config.{key}")
        if not file.is_file():
            raise _error(f"tls_server_config.{key}", f"no such file: {file}")
        files[key] = file
    cert, key_file = files["cert_file"], files["key_file"]
    if cert is None or key_file is None:
        missing = "cert_file" if cert is None else "key_file"
        raise _error(f"tls_server_config.{missing}", "is required with tls_server_config")
    auth = str(raw.get("client_auth_type") or "NoClientCert")
    if auth not in CLIENT_AUTH:
        raise _unknown("tls_server_config.client_auth_type: ", auth, tuple(CLIENT_AUTH))
    if auth != "NoClientCert" and files["client_ca_file"] is None:
        raise _error("tls_server_config.client_ca_file", f"is required with {auth}")
    versions = {}
    for name in ("min_version", "max_version"):
        version = raw.get(name)
        if version is not None and str(version) not in TLS_VERSIONS:
            raise _unknown(f"tls_server_config.{name}: ", version, tuple(TLS_VERSIONS))
        versions[name] = str(version) if version is not None else None
    return TlsConfig(
        cert_file=cert,
        key_file=key_file,
        client_ca_file=files["client_ca_file"],
        client_auth_type=auth,
        min_version=versions["min_version"] or "TLS12",
        max_version=versions["max_version"],
    )


def _users(raw: Mapping[str, Any]) -> Mapping[str, bytes]:
    users: dict[str, bytes] = {}
    for name, hashed in raw.items():
        path = f"basic_auth_users.{name}"
        if not isinstance(name, str) or not name or ":" in name:
            raise _error(path, "a user name must be a non-empty string without ':'")
        value = _string(hashed, path)
        if not value.startswith(BCRYPT_PREFIXES) or len(value) != 60:
            raise _error(path, "must be a bcrypt hash ($2b$..., 60 characters)")
        users[name] = value.encode()
    return MappingProxyType(users)


def _headers(raw: Mapping[str, Any]) -> Mapping[str, str]:
    for key in raw:
        if key not in HTTP_KEYS:
            raise _unknown("http_server_config.", key, HTTP_KEYS)
    headers = _mapping(raw.get("headers"), "http_server_config.headers")
    allowed = {name.lower(): name for name in ALLOWED_HEADERS}
    parsed: dict[str, str] = {}
    for name, value in headers.items():
        canonical = allowed.get(str(name).lower())
        if canonical is None:
            raise _error(
                f"http_server_config.headers.{name}",
                f"not settable; allowed: {', '.join(ALLOWED_HEADERS)}",
            )
        parsed[canonical] = _string(value, f"http_server_config.headers.{name}")
    return MappingProxyType(parsed)


def server_ssl_context(tls: TlsConfig) -> ssl.SSLContext:
    """A server context for `tls`; ConfigError names the file OpenSSL refused."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    if tls.max_version:
        context.maximum_version = TLS_VERSIONS[tls.max_version]
    load_certificates(context, tls)
    return context


def load_certificates(context: ssl.SSLContext, tls: TlsConfig) -> None:
    """(Re)load the key pair and client CA into `context`: new connections use the new ones."""
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except (ssl.SSLError, OSError) as exc:
        raise _error("tls_server_config.cert_file", f"cannot load the key pair: {exc}") from None
    context.verify_mode = CLIENT_AUTH[tls.client_auth_type]
    if tls.client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=tls.client_ca_file)
        except (ssl.SSLError, OSError) as exc:
            raise _error("tls_server_config.client_ca_file", f"cannot load: {exc}") from None
