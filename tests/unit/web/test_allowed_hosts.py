"""Which Host values reach sensitive routes (DNS rebinding): the pure decision."""

from __future__ import annotations

import pytest

from exporter.web.allowed_hosts import AllowedHosts


@pytest.mark.parametrize(
    "host",
    [
        None,  # HTTP/1.0 without Host: not a browser
        "127.0.0.1:9464",
        "127.0.0.1",
        "[::1]:9464",
        "192.168.1.7:80",
        "localhost:9464",
        "LOCALHOST",
        "localhost.:9464",
        "grafana.localhost:3000",
        "exporter.example.com",
        "exporter.example.com:443",
        "corp.example",
        "deep.a.corp.example:8080",
    ],
)
def test_allowed(host: str | None) -> None:
    hosts = AllowedHosts("0.0.0.0", ["exporter.example.com", ".corp.example"])
    assert hosts.allows(host)


@pytest.mark.parametrize(
    "host",
    [
        "evil.example:9464",
        "exporter.example.com.evil.example",
        "notcorp.example",
        "localhost.evil.example",
        "127.0.0.1.nip.io",
        "",
        ":9464",
        "[::1",
        "0x7f.1",  # browsers send the canonical dotted form, never this
    ],
)
def test_refused(host: str) -> None:
    hosts = AllowedHosts("0.0.0.0", ["exporter.example.com", ".corp.example"])
    assert not hosts.allows(host)


def test_the_listen_host_when_it_is_a_name_and_any() -> None:
    assert AllowedHosts("exporter.lan", []).allows("exporter.lan:9464")
    assert not AllowedHosts("127.0.0.1", []).allows("exporter.lan:9464")
    anything = AllowedHosts("127.0.0.1", ["*"])
    assert anything.any and anything.allows("evil.example")


def test_decisions_are_remembered_within_a_bound() -> None:
    hosts = AllowedHosts("127.0.0.1", [])
    for n in range(1000):
        assert not hosts.allows(f"evil{n}.example")
    assert len(hosts._memo) <= 256
