"""Enforcing `--web-config-file`: basic auth, response headers, and re-reading on change.

`/-/healthy` and `/-/ready` stay open without credentials: kubelet and load-balancer probes carry
none, and they reveal only up/ready. Everything else (`/metrics`, the API, the landing page, the
stream) needs a `basic_auth_users` login when users are configured.

The file (and the certificate files it names) is checked for changes at most once per
RELOAD_CHECK seconds, on requests: a changed valid file takes effect, new TLS key pairs included;
an invalid one is logged and the previous configuration stays.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import os
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import bcrypt
from aiohttp import web

from exporter.errors import ConfigError
from exporter.web.api_error import error_body, json_response
from exporter.web_config import WebConfig, load_certificates, load_web_config, server_ssl_context

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/-/healthy", "/-/ready"})
RELOAD_CHECK = 1.0
REALM = 'Basic realm="session-metrics-exporter", charset="UTF-8"'
# Successful checks are remembered (bcrypt costs tens of ms; Prometheus sends the same login on
# every scrape). Keyed by a digest of user, hash and password, never the password itself.
CACHE_MAX = 256
# Compared against for unknown users, so a wrong user name costs the same time as a wrong password.
_DUMMY_HASH = bcrypt.hashpw(b"unused", bcrypt.gensalt(4))


class WebConfigState:
    """The current WebConfig, its SSL context, and change detection."""

    def __init__(
        self, path: str, clock: Callable[[], float] = time.monotonic
    ) -> None:  # raises ConfigError: start-up stops on an invalid file
        self.path = path
        self.config = load_web_config(path)
        self.ssl_context: ssl.SSLContext | None = (
            server_ssl_context(self.config.tls) if self.config.tls else None
        )
        self._clock = clock
        self._checked = clock()
        self._signature = self._files_signature(self.config)
        self._verified: set[bytes] = set()

    def _files_signature(self, config: WebConfig) -> tuple[tuple[str, int, int], ...]:
        files = [Path(self.path)]
        if config.tls is not None:
            files += [config.tls.cert_file, config.tls.key_file]
            files += [config.tls.client_ca_file] if config.tls.client_ca_file else []
        signature = []
        for file in files:
            try:
                stat = os.stat(file)
            except OSError:
                signature.append((str(file), -1, -1))
            else:
                signature.append((str(file), stat.st_mtime_ns, stat.st_size))
        return tuple(signature)

    def current(self) -> WebConfig:
        now = self._clock()
        if now - self._checked >= RELOAD_CHECK:
            self._checked = now
            self._reload_if_changed()
        return self.config

    def _reload_if_changed(self) -> None:
        signature = self._files_signature(self.config)
        if signature == self._signature:
            return
        self._signature = signature
        try:
            config = load_web_config(self.path)
            if config.tls is not None and self.ssl_context is not None:
                load_certificates(self.ssl_context, config.tls)
        except ConfigError as exc:
            log.error("web config not reloaded, keeping the previous one: %s", exc)
            return
        if (config.tls is None) != (self.ssl_context is None):
            log.warning("web config: turning TLS on or off takes a restart; the rest is applied")
        self.config = config
        self._signature = self._files_signature(config)
        self._verified.clear()
        log.info("web config reloaded from %s", self.path)

    async def authorised(self, config: WebConfig, header: str | None) -> bool:
        credentials = _basic_credentials(header)
        if credentials is None:
            return False
        user, password = credentials
        hashed = config.users.get(user)
        digest = hashlib.sha256(b"\0".join((user.encode(), hashed or b"", password))).digest()
        if hashed is not None and digest in self._verified:
            return True
        # bcrypt is CPU-bound for tens of ms: off the event loop.
        ok = await asyncio.to_thread(bcrypt.checkpw, password, hashed or _DUMMY_HASH)
        if ok and hashed is not None:
            if len(self._verified) >= CACHE_MAX:
                self._verified.clear()
            self._verified.add(digest)
            return True
        return False


def _basic_credentials(header: str | None) -> tuple[str, bytes] | None:
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    if not sep:
        return None
    try:
        return user.decode("utf-8"), password
    except UnicodeDecodeError:
        return None


async def unauthorised(state: WebConfigState, request: web.Request) -> web.Response | None:
    """The 401 for a request that needs a login and has no valid one, else None."""
    config = state.current()
    if (
        config.auth_required
        and request.path not in OPEN_PATHS
        and not await state.authorised(config, request.headers.get("Authorization"))
    ):
        return json_response(
            error_body("unauthorized", "this exporter needs a basic-auth login"),
            401,
            {"WWW-Authenticate": REALM},
        )
    return None


def add_headers(
    state: WebConfigState,
) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        for name, value in state.config.headers.items():
            response.headers[name] = value

    return on_prepare
