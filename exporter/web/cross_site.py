"""Refuse state-changing requests that a browser sends on behalf of another site.

A page on any origin can POST to a local exporter without a CORS preflight (a `text/plain` POST
with no body is a "simple request"). Browsers say where such a request comes from: `Origin` on
every non-GET request, and `Sec-Fetch-Site` on modern ones. Either one naming another site gets
403 before the handler runs (`exporter.web.handling`). Clients that send neither (curl, Prometheus,
server-side code) are not browsers acting for a third party and pass unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

STATE_CHANGING = frozenset({"POST", "PUT", "DELETE", "PATCH"})
# `same-site` is refused too: another port on localhost is the same site but not this exporter.
TRUSTED_FETCH_SITES = frozenset({"same-origin", "none"})


def is_cross_site(method: str, headers: Mapping[str, str], host: str) -> bool:
    """True when a browser sent a state-changing request from an origin other than `host`.

    >>> is_cross_site("POST", {"Origin": "https://evil.example"}, "127.0.0.1:9464")
    True
    >>> is_cross_site("POST", {"Origin": "http://127.0.0.1:9464"}, "127.0.0.1:9464")
    False
    >>> is_cross_site("POST", {}, "127.0.0.1:9464")
    False
    """
    if method not in STATE_CHANGING:
        return False
    fetch_site = headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site.lower() not in TRUSTED_FETCH_SITES:
        return True
    origin = headers.get("Origin")
    if origin is None:
        return False
    if origin == "null":  # sandboxed frames, file:// pages, some redirects
        return True
    return urlsplit(origin).netloc.lower() != host.lower()
