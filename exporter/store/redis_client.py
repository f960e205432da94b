"""Redis clients from `--redis-url`: the one place that turns the URL into a client, for every
deployment the exporter supports.

    redis://[[user]:password@]host[:port][/db][?option=value&...]        one server
    rediss://...                                                         one server over TLS
    unix://[[user]:password@]/path/to/redis.sock[?db=N]                  a local socket
    redis+cluster://[[user]:password@]host:port[,host:port...]          Redis Cluster (seed nodes)
    rediss+cluster://...                                                 Redis Cluster over TLS
    redis+sentinel://[[user]:password@]host:port[,host:port...]/<master>[/db]   via Sentinel
    rediss+sentinel://...                                                the master over TLS

Query options are redis-py connection options (`ssl_ca_certs=/etc/ca.pem`, `ssl_cert_reqs=none`,
...). With Sentinel the URL's credentials are the data nodes'; `sentinel_username=` and
`sentinel_password=` authenticate to the sentinels themselves.

    >>> parse_redis_url("redis+sentinel://10.0.0.1,10.0.0.2:26380/sessions").hosts
    (('10.0.0.1', 26379), ('10.0.0.2', 26380))

Every client gets short timeouts, and one retry only for a connection that turns out to be closed
(a pooled socket the server dropped, e.g. across a restart, fails once on first use; a fresh
connection then answers). Timeouts are never retried: the tiered store's breaker decides what a
failure means. The pool is bounded (`max_connections`): a caller waits up to `pool_timeout` for a
free connection and then gets `PoolBusy`, which is backpressure, not an outage.

`RedisDeployment` also opens the dedicated RESP2 connections the coherence listener needs, one per
primary (the server that executes the writes it must hear about).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    ConnectionPool,
    SSLConnection,
    parse_url,
)
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import (
    MasterNotFoundError,
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
)
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError, RedisClusterException, RedisError

from exporter.core.errors import ConfigError
from exporter.core.settings import Settings
from exporter.store.cluster_routes import cluster_slot_owners
from exporter.store.sentinel_view import MasterView

RedisClient: TypeAlias = "aioredis.Redis | RedisCluster"
SETTING = "--redis-url"
STANDALONE, CLUSTER, SENTINEL = "standalone", "cluster", "sentinel"
DEFAULT_PORTS = {STANDALONE: 6379, CLUSTER: 6379, SENTINEL: 26379}
_SENTINEL_AUTH = ("sentinel_username", "sentinel_password")
# Redis's bound on its client-tracking table (keys), and its default.
TRACKING_TABLE_SETTING = "tracking-table-max-keys"
DEFAULT_TRACKING_TABLE_MAX_KEYS = 1_000_000


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """A parsed `--redis-url`. `options` are redis-py connection keyword arguments (credentials,
    TLS, query options); `hosts` are the server (standalone), seed nodes or sentinels."""

    kind: str
    tls: bool
    hosts: tuple[tuple[str, int], ...] = ()
    master: str | None = None
    options: dict[str, Any] = field(default_factory=dict, repr=False)
    sentinel_options: dict[str, Any] = field(default_factory=dict, repr=False)


def parse_redis_url(url: str) -> RedisTarget:
    """Validate `url` into a RedisTarget; ConfigError (never echoing the URL) when malformed."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    base, _, variant = scheme.partition("+")
    if base not in ("redis", "rediss", "unix") or variant not in ("", CLUSTER, SENTINEL):
        raise ConfigError(SETTING, f"unsupported scheme {scheme!r}")
    if base == "unix" and variant:
        raise ConfigError(SETTING, "unix:// cannot be combined with +cluster or +sentinel")
    if not variant:
        return _standalone(url, base)
    return _multi_host(url, variant, tls=base == "rediss")


def _standalone(url: str, base: str) -> RedisTarget:
    try:
        options: dict[str, Any] = dict(parse_url(url))
    except ValueError as exc:
        raise ConfigError(SETTING, _safe(exc)) from None
    options.pop("connection_class", None)
    if base == "unix":
        if not options.get("path"):
            raise ConfigError(SETTING, "unix:// needs a socket path, e.g. unix:///run/redis.sock")
        return RedisTarget(STANDALONE, False, options=options)
    host, port = options.pop("host", "localhost"), options.pop("port", DEFAULT_PORTS[STANDALONE])
    return RedisTarget(STANDALONE, base == "rediss", ((host, int(port)),), options=options)


def _multi_host(url: str, kind: str, *, tls: bool) -> RedisTarget:
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigError(SETTING, "malformed URL (check the host list)") from None
    userinfo, _, netloc = parts.netloc.rpartition("@")
    hosts = tuple(_host_port(item, DEFAULT_PORTS[kind]) for item in netloc.split(","))
    path = [unquote(piece) for piece in parts.path.split("/") if piece]
    query = dict(parse_qsl(parts.query))
    sentinel_options = {
        name.removeprefix("sentinel_"): query.pop(name) for name in _SENTINEL_AUTH if name in query
    }
    master = None
    if kind == SENTINEL:
        if not path:
            raise ConfigError(SETTING, "redis+sentinel:// needs the master name: .../<master>[/db]")
        master, path = path[0], path[1:]
    if len(path) > 1 or (kind == CLUSTER and path and path[0] != "0"):
        raise ConfigError(SETTING, "unexpected path: Redis Cluster has only database 0")
    # Credentials, db and query options are parsed by redis-py itself, from a one-host URL.
    credentials = userinfo + "@" if userinfo else ""
    single = f"{'rediss' if tls else 'redis'}://{credentials}h/{path[0] if path else 0}"
    if query:
        single += "?" + urlencode(query)
    try:
        options: dict[str, Any] = dict(parse_url(single))
    except ValueError as exc:
        raise ConfigError(SETTING, _safe(exc)) from None
    for name in ("host", "port", "connection_class"):
        options.pop(name, None)
    if kind == CLUSTER:
        options.pop("db", None)
    return RedisTarget(kind, tls, hosts, master, options, sentinel_options)


def _host_port(item: str, default_port: int) -> tuple[str, int]:
    item = item.strip()
    if item.startswith("["):  # [IPv6]:port
        host, _, rest = item[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = item.partition(":")
    if not host:
        raise ConfigError(SETTING, "empty host in the host list (expected host:port,host:port)")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ConfigError(SETTING, "a port in the host list is not a number in 1-65535")
    return host, int(port) if port else default_port


def _safe(exc: Exception) -> str:
    # redis-py's messages name the option, never the URL; keep only that much.
    return str(exc).split("\n", 1)[0]


# What a Redis command can raise when Redis (or the way to it) fails. RedisClusterException is
# not a RedisError ("cannot be connected" when no node answers a re-initialization).
REDIS_FAILURES = (TimeoutError, OSError, RedisError, RedisClusterException)


class PoolBusy(RedisConnectionError):
    """No pooled connection became free within the wait deadline: Redis may be perfectly healthy."""


class WaitingConnectionPool(ConnectionPool):
    """redis-py's ConnectionPool, bounded to `max_connections`, whose callers wait up to `timeout`
    for a connection to be released instead of failing at once; then `PoolBusy`.

    Not redis-py's BlockingConnectionPool, which does the same but enters an asyncio.Condition and
    a timeout on every acquire: 17.7 µs per acquire + release against 7.6 µs here (measured on the
    project's 2-vCPU machine, redis-py 8.1, uvloop), on every command. Here waiting costs only when
    the pool is full: the plain pool's MaxConnectionsError is the signal to wait for a release."""

    def __init__(self, *args: Any, timeout: float = 1.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeout = timeout
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        acquire = super().get_connection  # awaited here, not through a helper: one coroutine less
        try:
            return await acquire(*args, **kwargs)  # type: ignore[no-untyped-call,no-any-return]
        except MaxConnectionsError:
            pass
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:  # another caller may take the released connection first: wait again
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except TimeoutError:
                self._stop_waiting(waiter)
                raise PoolBusy("no Redis connection became free in time") from None
            except BaseException:
                self._stop_waiting(waiter)
                raise
            try:
                return await acquire(*args, **kwargs)  # type: ignore[no-untyped-call,no-any-return]
            except MaxConnectionsError:
                continue

    async def release(self, connection: AbstractConnection) -> None:
        await super().release(connection)
        if self._waiters:
            self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _stop_waiting(self, waiter: asyncio.Future[None]) -> None:
        """A caller gives up (deadline, cancel): a release that already woke it wakes the next
        caller instead, or a free connection would sit beside waiting callers."""
        if waiter.done() and not waiter.cancelled():
            self._wake_one()
        elif waiter in self._waiters:
            self._waiters.remove(waiter)


class LatestSentinel(Sentinel):
    """redis-py's Sentinel client, but the master is what the newest configuration says, and
    never a server other than the one a sentinel announced it switched to (`sentinel_view`), not
    what the first sentinel that answers says (maybe the old master, still acknowledging writes
    its resync will delete). Every sentinel is asked at once: one round trip, on new connections
    only."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.view = MasterView()

    async def discover_master(self, service_name: str) -> tuple[str, int]:
        answers = await asyncio.gather(
            *(sentinel.sentinel_master(service_name) for sentinel in self.sentinels),
            return_exceptions=True,
        )
        states = [
            state
            for state in answers
            if isinstance(state, dict) and self.check_master_state(state, service_name)
        ]
        master = self.view.choose(states)
        if master is None:
            raise MasterNotFoundError(f"No master found for {service_name!r}")
        return master


async def _check_master(connection: Any, address: tuple[str, int]) -> None:
    """Refuse a server that is not a master (a stale answer of a sentinel named a replica), or
    no longer the one Sentinel names: a switch announced while this connection was being made
    (the reset of the pool then found nothing to close, and the old master still says `master`
    and takes writes until Sentinel turns it into a replica)."""
    await connection.send_command("ROLE")
    role = await connection.read_response()
    name = role[0].decode() if isinstance(role[0], bytes) else str(role[0])
    if name != "master":
        await connection.disconnect()
        raise RedisConnectionError(f"the server Sentinel named is a {name}, not the master")
    current = connection.connection_pool.sentinel_manager.view.current
    if current is not None and current != address:
        await connection.disconnect()
        raise RedisConnectionError("Sentinel switched the master while connecting")


class MasterConnection(SentinelManagedConnection):
    """A connection to the Sentinel master that checks, once connected, that it is one, and
    still the one Sentinel names."""

    async def connect_to(self, address: tuple[str, int]) -> None:
        await super().connect_to(address)  # type: ignore[no-untyped-call]
        await _check_master(self, address)


class MasterSSLConnection(SentinelManagedSSLConnection):
    async def connect_to(self, address: tuple[str, int]) -> None:
        await super().connect_to(address)  # type: ignore[no-untyped-call]
        await _check_master(self, address)


class MasterPool(SentinelConnectionPool):
    """redis-py's Sentinel pool, which hands out a pooled connection only while it talks to the
    master Sentinel names now (`MasterView.current`): one made to another server (whatever
    race left it in the pool) reconnects first, through the sentinels. A tuple comparison per
    checkout. (redis-py 8.2's base pool no longer asks `owns_connection`, which did this.)"""

    async def ensure_connection(self, connection: AbstractConnection) -> None:
        current = self.sentinel_manager.view.current
        address = (getattr(connection, "host", None), getattr(connection, "port", None))
        if current is not None and connection.is_connected and address != current:
            await connection.disconnect()
        await super().ensure_connection(connection)


def client_options(
    timeout: float, max_connections: int = 64, pool_timeout: float = 1.0
) -> dict[str, Any]:
    """Short timeouts; one retry, on a fresh connection, only when a connection was found closed
    (redis-py disconnects it before retrying). A dead server refuses the retry at once, a hung one
    costs one timeout: then the breaker. `max_connections`/`pool_timeout` bound the pool."""
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        "retry_on_timeout": False,
        "health_check_interval": 0,
        "max_connections": max_connections,
        "pool_timeout": pool_timeout,
    }


def _standalone_client(url: str, options: dict[str, Any]) -> aioredis.Redis:
    pool_options = {**options, "timeout": options["pool_timeout"]}
    del pool_options["pool_timeout"]
    pool = WaitingConnectionPool.from_url(url, **pool_options)
    return aioredis.Redis.from_pool(pool)  # the client owns (and closes) its pool


@dataclass(slots=True)
class TrackedNode:
    """A primary the coherence listener must watch: a name for logs and a way to open a fresh
    RESP2 connection to it (not from the pool: it will be subscribed or tracking)."""

    name: str
    connect: Callable[[], AbstractConnection]


class RedisDeployment:
    """The data client for one `--redis-url`, plus what coherence needs to reach each primary."""

    def __init__(
        self, target: RedisTarget, client: RedisClient, sentinel: LatestSentinel | None = None
    ) -> None:
        self.target = target
        self.kind = target.kind
        self.client = client
        self.sentinel = sentinel

    async def primaries(self) -> list[TrackedNode]:
        """The servers that execute writes now (Cluster: every primary; Sentinel: the current
        master as the sentinels report it)."""
        if isinstance(self.client, RedisCluster):
            return await self._cluster_primaries(self.client)
        if self.sentinel is not None:
            assert self.target.master is not None
            host, port = await self.sentinel.discover_master(self.target.master)
            return [self._tcp_node(f"{host}:{port}", host, int(port))]
        pool = self.client.connection_pool
        kwargs = {**pool.connection_kwargs, "protocol": 2}
        name = str(kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}")
        return [TrackedNode(name, lambda: pool.connection_class(**kwargs))]

    async def _cluster_primaries(self, client: RedisCluster) -> list[TrackedNode]:
        """The slot owners by the newest config epoch any node reports (`cluster_view`), not by
        the one random node redis-py refreshes from: that one may be a restarted, stale master."""
        await client.initialize()
        owners = await cluster_slot_owners(client)
        if not owners:  # no node answered: keep what the refresh found
            return [self._cluster_node(node) for node in client.get_primaries()]
        return [self._cluster_node(self._cluster_node_at(client, name)) for name in owners]

    @staticmethod
    def _cluster_node_at(client: RedisCluster, name: str) -> ClusterNode:
        """The client's node at `name`, or a new one like its others (not known to it yet)."""
        known = client.get_node(node_name=name)
        if known is not None:
            return known
        host, _, port = name.rpartition(":")
        model = client.get_nodes()[0]
        return ClusterNode(
            host, int(port), connection_class=model.connection_class, **model.connection_kwargs
        )

    def _cluster_node(self, node: ClusterNode) -> TrackedNode:
        kwargs = {**node.connection_kwargs, "protocol": 2}
        return TrackedNode(node.name, lambda: node.connection_class(**kwargs))

    def _tcp_node(self, name: str, host: str, port: int) -> TrackedNode:
        pool = self.client.connection_pool  # type: ignore[union-attr]
        kwargs = {**pool.connection_kwargs, "host": host, "port": port, "protocol": 2}
        kwargs.pop(
            "connection_pool", None
        )  # Sentinel-managed connections re-resolve; ours must not
        cls = SSLConnection if self.target.tls else Connection
        return TrackedNode(name, lambda: cls(**kwargs))

    def pool_limits(self) -> tuple[int, float]:
        """The pool's bound on connections and how long a caller waits for one."""
        pool = getattr(self.client, "connection_pool", None)
        return int(getattr(pool, "max_connections", 64)), float(getattr(pool, "timeout", 1.0))

    async def tracking_tables(self) -> list[tuple[int, int]]:
        """On every primary: (keys in Redis's tracking table, its bound `tracking-table-max-keys`,
        0 for none). A bound that CONFIG GET may not read (ACLs, a managed Redis) counts as
        Redis's default."""
        client = self.client
        every: dict[str, Any] = (
            {"target_nodes": RedisCluster.PRIMARIES} if isinstance(client, RedisCluster) else {}
        )
        stats = _per_node(await client.info("stats", **every), "tracking_total_keys")
        try:
            reply: dict[str, Any] = await client.config_get(TRACKING_TABLE_SETTING, **every)  # type: ignore[assignment]
            limits = _per_node(reply, TRACKING_TABLE_SETTING)
            limit = min(int(value.get(TRACKING_TABLE_SETTING) or 0) for value in limits)
        except RedisError:
            limit = DEFAULT_TRACKING_TABLE_MAX_KEYS
        return [(int(info.get("tracking_total_keys", 0)), limit) for info in stats]

    async def ping(self) -> None:
        """PING every primary (a Cluster client would otherwise ask one random node)."""
        if isinstance(self.client, RedisCluster):
            await self.client.ping(target_nodes=RedisCluster.PRIMARIES)
        else:
            await self.client.ping()

    async def aclose(self) -> None:
        await self.client.aclose()
        if self.sentinel is not None:
            with contextlib.suppress(Exception):
                await self.sentinel.aclose()


def _per_node(result: dict[str, Any], field: str) -> list[dict[str, Any]]:
    """One node's reply, or a Cluster's replies by node name: a list of replies either way."""
    return [result] if field in result else list(result.values())


def open_deployment(
    url: str, timeout: float, max_connections: int = 64, pool_timeout: float = 1.0
) -> RedisDeployment:
    """Build the client(s) for `url` (no I/O yet: clients connect on first use)."""
    target = parse_redis_url(url)
    options = client_options(timeout, max_connections, pool_timeout)
    if target.kind == STANDALONE:
        return RedisDeployment(target, _standalone_client(url, options))
    # Cluster and Sentinel manage their own pools: bounded too, but a full one raises
    # MaxConnectionsError at once (mapped to busy like PoolBusy) instead of queueing.
    del options["pool_timeout"]
    merged = {**options, **target.options}  # options given in the URL win
    if target.kind == CLUSTER:
        nodes = [ClusterNode(host, port) for host, port in target.hosts]
        merged.pop("retry_on_timeout")  # the Cluster client's `retry` (0 retries) covers it
        client = RedisCluster(startup_nodes=nodes, ssl=target.tls, **merged)
        return RedisDeployment(target, client)
    tls = {name: value for name, value in merged.items() if name.startswith("ssl_")}
    sentinel_kwargs = {
        **{name: value for name, value in merged.items() if name.startswith("socket_")},
        **({"ssl": True, **tls} if target.tls else {}),
        **target.sentinel_options,
    }
    sentinel = LatestSentinel(list(target.hosts), sentinel_kwargs=sentinel_kwargs, **merged)
    assert target.master is not None
    pool_options: dict[str, Any] = {
        "connection_class": MasterSSLConnection if target.tls else MasterConnection
    }
    client = sentinel.master_for(target.master, connection_pool_class=MasterPool, **pool_options)
    return RedisDeployment(target, client, sentinel)


def create_redis_client(settings: Settings) -> RedisDeployment:
    """The Redis client(s) for `settings.redis_url`, with the configured command timeout."""
    assert settings.redis_url is not None
    return open_deployment(
        settings.redis_url,
        settings.redis_timeout,
        settings.redis_max_connections,
        settings.redis_pool_timeout,
    )
