"""Which `Host` values the exporter answers sensitive requests for: the defence against DNS
rebinding.

A page on `http://evil.example:9464/` can have its name re-resolved to 127.0.0.1 after it loaded:
the browser then sends the page's requests to a local exporter as same-origin requests, with
`Origin: http://evil.example:9464` and `Host: evil.example:9464`, so the cross-site check passes
and the page can read the answers. The one thing the attacker cannot choose is that `Host`.

Allowed without configuration, because no rebinding can produce them:
- an IP address (`127.0.0.1`, `[::1]`, `10.0.0.7`): a browser that sends one connected to that
  very address, so the page's origin is the exporter itself; Kubernetes probes and Prometheus's
  service discovery use pod IPs;
- `localhost` and `*.localhost` (browsers resolve them to loopback themselves, RFC 6761);
- the `--listen` host when it is a name;
- the names of `--web-allowed-host` (`.example.com` covers the domain and its subdomains, `*` any).

    >>> hosts = AllowedHosts("0.0.0.0", ["exporter.example.com"])
    >>> hosts.allows("127.0.0.1:9464"), hosts.allows("exporter.example.com"), hosts.allows(None)
    (True, True, True)
    >>> hosts.allows("evil.example:9464")
    False

A request without `Host` (HTTP/1.0) is allowed: every browser sends one. The port is ignored: a
port-forward or a proxy may change it, and rebinding cannot be told apart by it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

ANY = "*"
_CACHE_MAX = 256  # distinct Host values remembered; past it the memo starts again


class AllowedHosts:
    def __init__(self, listen_host: str, configured: Iterable[str]) -> None:
        names = {name.lower().rstrip(".") for name in configured}
        self.any = ANY in names
        self._suffixes = tuple(name for name in names if name.startswith("."))
        self._names = {name for name in names if not name.startswith(".")} - {ANY}
        self._names.add("localhost")
        if not _is_ip(listen_host):
            self._names.add(listen_host.lower().rstrip("."))
        self._memo: dict[str, bool] = {}

    def allows(self, host: str | None) -> bool:
        """Whether a request with this `Host` header may reach a sensitive route."""
        if host is None or self.any:
            return True
        known = self._memo.get(host)
        if known is None:
            if len(self._memo) >= _CACHE_MAX:
                self._memo.clear()
            known = self._memo[host] = self._decide(host)
        return known

    def _decide(self, host: str) -> bool:
        name = _without_port(host).lower().rstrip(".")
        if not name:
            return False
        if _is_ip(name) or name in self._names or name.endswith(".localhost"):
            return True
        return any(name == suffix[1:] or name.endswith(suffix) for suffix in self._suffixes)


def _without_port(host: str) -> str:
    if host.startswith("["):  # [v6]:port
        return host[1 : host.find("]")] if "]" in host else ""
    name, colon, port = host.rpartition(":")
    return name if colon and port.isascii() and port.isdigit() else host


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
