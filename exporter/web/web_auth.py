"""Enforcing `--web-config-file`: basic auth, response headers, and re-reading on change.

`/-/healthy` and `/-/ready` stay open without credentials: kubelet and load-balancer probes carry
none, and they reveal only up/ready. Everything else (`/metrics`, the API, the landing page, the
stream) needs a `basic_auth_users` login when users are configured.

The file (and the certificate files it names) is checked for changes at most once per
RELOAD_CHECK seconds, on requests. A changed valid file takes effect, new TLS key pairs included.
A file that cannot be read or validated, or that would turn basic auth or TLS off (an in-place
rewrite is empty for a moment), is refused: the last good configuration stays in force, with one
error line, `session_exporter_web_config_last_reload_successful` 0 and a `web_config_rejected`
event. Authentication never fails open.

Passwords are checked by `PasswordChecker` (bcrypt on its own thread, bounded: see there).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from exporter.core.errors import ConfigError
from exporter.core.event_log import EventLog
from exporter.core.metrics import Metrics
from exporter.web.api_error import error_body, json_response
from exporter.web.password_checks import ChecksBusy, PasswordChecker, dummy_hash
from exporter.web.web_config import (
    WebConfig,
    check_reload,
    load_certificates,
    load_web_config,
    server_ssl_context,
)

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/-/healthy", "/-/ready"})
RELOAD_CHECK = 1.0
REALM = 'Basic realm="session-metrics-exporter", charset="UTF-8"'
# A login refused because too many are being checked is answered after the Retry-After it
# announces: a client flooding logins then sends one a second per connection, instead of
# spinning the event loop on instant refusals (the wait costs nothing but the open connection).
BUSY_RETRY_AFTER = 1.0
Signature = tuple[tuple[str, int, int], ...]


class WebConfigState:
    """The configuration in force, its SSL context, change detection and the password checks."""

    def __init__(
        self, path: str, metrics: Metrics, clock: Callable[[], float] = time.monotonic
    ) -> None:  # raises ConfigError: start-up stops on an invalid file
        self.path = path
        self.config = load_web_config(path)
        self.ssl_context: ssl.SSLContext | None = (
            server_ssl_context(self.config.tls) if self.config.tls else None
        )
        self.metrics = metrics
        self.events: EventLog | None = None  # set while the runtime runs (exporter.web.app)
        self.checker = PasswordChecker()
        self._dummy = dummy_hash(self.config.users.values())
        self._clock = clock
        self._checked = clock()
        self._signature = self._files_signature(self.config)

    def _files_signature(self, config: WebConfig) -> Signature:
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
        self._signature = signature  # a refused file is reported once, not on every request
        try:
            config = load_web_config(self.path)
            check_reload(self.config, config, serving_tls=self.ssl_context is not None)
            if config.tls is not None and self.ssl_context is not None:
                load_certificates(self.ssl_context, config.tls)
        except ConfigError as exc:
            self._refused(str(exc))
            return
        except Exception as exc:  # any surprise keeps the last good configuration too
            self._refused(f"{type(exc).__name__} while reading it")
            return
        if config.tls is not None and self.ssl_context is None:
            log.warning("web config: turning TLS on takes a restart; the rest is applied")
        self._apply(config)

    def _apply(self, config: WebConfig) -> None:
        self.config = config
        self._dummy = dummy_hash(config.users.values())
        self._signature = self._files_signature(config)
        self.checker.forget()
        self.metrics.web_config_last_reload_successful.set(1)
        log.info("web config reloaded from %s", self.path)
        if self.events is not None:
            self.events.record(
                "web_config_reloaded", f"web configuration reloaded from {self.path}"
            )

    def _refused(self, reason: str) -> None:
        self.metrics.web_config_last_reload_successful.set(0)
        log.error("web config not reloaded, keeping the last good one: %s", reason)
        if self.events is not None:
            self.events.record(
                "web_config_rejected",
                f"web configuration {self.path} refused, the last good one stays: {reason}",
            )

    async def authorised(self, config: WebConfig, header: str | None) -> bool:
        """Whether `header` holds a valid login; ChecksBusy when too many checks are waiting."""
        credentials = _basic_credentials(header)
        if credentials is None:
            return False
        user, password = credentials
        return await self.checker.check(user, password, config.users.get(user), self._dummy)

    def close(self) -> None:
        self.checker.close()


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
    """The 401 (or 503 when password checks are backed up) for a request that needs a login and
    has no valid one, else None."""
    config = state.current()
    if not config.auth_required or request.path in OPEN_PATHS:
        return None
    header = request.headers.get("Authorization")
    try:
        if await state.authorised(config, header):
            return None
    except ChecksBusy:
        if not state.checker.closed:  # stopping: answer at once
            await asyncio.sleep(BUSY_RETRY_AFTER)
        return json_response(
            error_body("auth_busy", "too many logins are being checked; retry shortly"),
            503,
            {"Retry-After": f"{BUSY_RETRY_AFTER:.0f}"},
        )
    return json_response(
        error_body("unauthorized", "this exporter needs a basic-auth login"),
        401,
        {"WWW-Authenticate": REALM},
    )


def add_headers(
    state: WebConfigState,
) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        for name, value in state.config.headers.items():
            response.headers[name] = value

    return on_prepare
