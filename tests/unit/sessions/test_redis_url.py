"""`--redis-url` syntaxes: what each deployment parses to, clear errors that never echo the URL,
the clients built from them (no I/O), and passwords redacted for logs."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import ConnectionPool, SSLConnection, UnixDomainSocketConnection

from exporter.core.errors import ConfigError
from exporter.core.redaction import redact as redact_url
from exporter.store.redis_client import (
    CLUSTER,
    SENTINEL,
    STANDALONE,
    open_deployment,
    parse_redis_url,
)


def pool_of(client: Redis | RedisCluster) -> ConnectionPool:
    """The pool of a client that has one (a cluster client has one per node)."""
    assert isinstance(client, Redis), client
    return client.connection_pool


def test_standalone_tcp_tls_and_unix() -> None:
    plain = parse_redis_url("redis://localhost:6380/2")
    assert (plain.kind, plain.tls, plain.hosts, plain.options) == (
        STANDALONE,
        False,
        (("localhost", 6380),),
        {"db": 2},
    )
    tls = parse_redis_url("rediss://app:s3cret@cache.internal/0?ssl_cert_reqs=none")
    assert tls.tls and tls.hosts == (("cache.internal", 6379),)
    assert tls.options["password"] == "s3cret" and tls.options["ssl_cert_reqs"] == "none"
    unix = parse_redis_url("unix:///run/redis/redis.sock?db=3")
    assert unix.kind == STANDALONE and unix.options == {"path": "/run/redis/redis.sock", "db": 3}


def test_cluster_seed_nodes_default_port_ipv6_and_credentials() -> None:
    target = parse_redis_url("redis+cluster://:p%40ss@10.0.0.1:7000,10.0.0.2,[::1]:7002")
    assert target.kind == CLUSTER and not target.tls
    assert target.hosts == (("10.0.0.1", 7000), ("10.0.0.2", 6379), ("::1", 7002))
    assert target.options == {"password": "p@ss"}
    assert parse_redis_url("rediss+cluster://h:1?ssl_ca_certs=/ca.pem").options == {
        "ssl_ca_certs": "/ca.pem"
    }
    assert parse_redis_url("redis+cluster://h:1/0").options == {}


def test_sentinel_master_db_and_sentinel_auth() -> None:
    target = parse_redis_url(
        "redis+sentinel://u:pw@s1,s2:26380/sessions/4?sentinel_password=spw&socket_keepalive=true"
    )
    assert target.kind == SENTINEL and target.master == "sessions"
    assert target.hosts == (("s1", 26379), ("s2", 26380))
    assert target.options == {"username": "u", "password": "pw", "db": 4, "socket_keepalive": True}
    assert target.sentinel_options == {"password": "spw"}


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("memcached://h:1", "unsupported scheme"),
        ("unix+cluster:///tmp/s.sock", "cannot be combined"),
        ("unix://", "needs a socket path"),
        ("redis+sentinel://s1:26379", "needs the master name"),
        ("redis+sentinel://s1:26379/m/1/extra", "unexpected path"),
        ("redis+cluster://h:1/3", "only database 0"),
        ("redis+cluster://h:1,,h:2", "empty host"),
        ("redis+cluster://:secret@h:port", "not a number"),
        ("redis+cluster://h:70000", "not a number"),
        ("redis+cluster://:secret@h:1?socket_timeout=soon", "socket_timeout"),
        ("redis://:secret@[bad", "Invalid IPv6 URL"),
        ("redis+cluster://:secret@[bad", "malformed URL"),
    ],
)
def test_malformed_urls_name_the_setting_and_never_echo_the_url(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_redis_url(url)
    message = str(error.value)
    assert "--redis-url" in message and fragment in message
    assert "secret" not in message
    if "@" in url:
        assert url.split("@", 1)[1] not in message


async def test_clients_per_deployment_without_connecting() -> None:
    standalone = open_deployment("redis://127.0.0.1:1/0", 0.25)
    assert isinstance(standalone.client, Redis) and standalone.kind == STANDALONE
    pool = standalone.client.connection_pool
    assert pool.connection_kwargs["socket_timeout"] == 0.25
    tls = open_deployment("rediss://127.0.0.1:1/0", 0.25)
    assert pool_of(tls.client).connection_class is SSLConnection
    unix = open_deployment("unix:///tmp/none.sock", 0.25)
    assert pool_of(unix.client).connection_class is UnixDomainSocketConnection
    cluster = open_deployment("redis+cluster://127.0.0.1:1,127.0.0.1:2", 0.25)
    assert isinstance(cluster.client, RedisCluster) and cluster.kind == CLUSTER
    sentinel = open_deployment("redis+sentinel://127.0.0.1:1/sessions", 0.25)
    assert isinstance(sentinel.client, Redis) and sentinel.kind == SENTINEL
    for deployment in (standalone, tls, unix, cluster, sentinel):
        await deployment.aclose()


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("redis+cluster://:pw@h1:1,h2:2", "redis+cluster://***@h1:1,h2:2"),
        ("redis+sentinel://u:pw@s1,s2:26380/m", "redis+sentinel://***@s1,s2:26380/m"),
        ("rediss://u:pw@h:6380/0", "rediss://***@h:6380/0"),
        ("unix://:pw@/run/redis.sock?db=1", "unix://***@/run/redis.sock?db=1"),
        ("redis://h:1/0", "redis://h:1/0"),
    ],
)
def test_passwords_are_redacted_for_logs(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


def test_the_cli_rejects_a_malformed_url_before_start_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from exporter.app.cli import EXIT_CONFIG, main

    assert main(["--redis-url", "redis+sentinel://:secret@s1:26379,s2"]) == EXIT_CONFIG
    error = capsys.readouterr().err
    assert "--redis-url" in error and "master name" in error and "secret" not in error


def test_a_malformed_host_is_one_line_and_exit_2_without_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from exporter.app.cli import EXIT_CONFIG, main

    assert main(["--redis-url", "redis://:pw@[bad"]) == EXIT_CONFIG
    error = capsys.readouterr().err
    assert "--redis-url" in error and "pw" not in error and "Traceback" not in error
    assert len(error.strip().splitlines()) == 1


def test_the_pool_is_bounded_and_retries_only_closed_connections() -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from exporter.store.redis_client import WaitingConnectionPool

    deployment = open_deployment("redis://127.0.0.1:1/0", 0.25, 7, 0.5)
    pool = pool_of(deployment.client)
    assert isinstance(pool, WaitingConnectionPool)
    assert pool.max_connections == 7 and pool.timeout == 0.5
    retry = pool.connection_kwargs["retry"]
    assert retry.get_retries() == 1
    assert RedisConnectionError in retry._supported_errors
    assert RedisTimeoutError not in retry._supported_errors  # a hung Redis costs one timeout
