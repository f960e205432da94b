"""The HTTP servers the throughput benchmark compares, each run in its own process:

    python -m bench.servers bare PORT JSON_FILE        a bare aiohttp handler returning fixed JSON
    python -m bench.servers exporter PORT REDIS_URL    the exporter app (GET /api/sessions/{id})
    python -m bench.servers exporter-fleet[@SECONDS] PORT REDIS_URL     the same, snapshots every
    python -m bench.servers exporter-no-fleet[@SECONDS] PORT REDIS_URL  SECONDS (default 5), with
                                                                        and without fleet publishing
    python -m bench.servers bare-set PORT REDIS_URL    a bare aiohttp handler doing one raw SET
    python -m bench.servers aiohttp-session PORT REDIS_URL
        aiohttp-session's RedisStorage, loading the session on every request
    python -m bench.servers counter-redis PORT REDIS_URL
    python -m bench.servers counter-tiered PORT REDIS_URL
        GET /count increments a counter in an aiohttp-session session (a load and a save per
        request), GET /read only loads it; on RedisStorage or
        exporter.library.aiohttp_session.TieredStorage

All use uvloop when installed, no access log, the default aiohttp settings otherwise. The
exporter's cycle collector is tuned as its command line tunes it (`exporter.app.gc_tuning`); the
others keep CPython's defaults (tuned alike, the bare SET handler used 199 µs of CPU per request
against 194 µs untuned, in one series of runs: no gain to withhold from the baseline).
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
from aiohttp import web

FLEET_BENCH_INTERVAL = 5.0


def bare_app(body: bytes) -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/api/sessions/{id}", handler)
    return app


def bare_set_app(redis_url: str) -> web.Application:
    """POST /api/sessions: the body stored under a fresh random key with one raw SET (and the
    same 1 h expiry), answered 201 with the id: the floor for a write-through create."""
    import secrets

    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)

    async def handler(request: web.Request) -> web.Response:
        body = await request.read()
        sid = secrets.token_urlsafe(24)
        await client.set(f"bare:{sid}", body, ex=3600)
        return web.Response(
            body=orjson.dumps({"id": sid}), status=201, content_type="application/json"
        )

    async def close(app: web.Application) -> None:
        await client.aclose()

    app = web.Application()
    app.router.add_post("/api/sessions", handler)
    app.on_cleanup.append(close)
    return app


def exporter_app(redis_url: str, **extra: object) -> web.Application:
    """The exporter as the command line serves it, its cycle collector tuned alike."""
    from prometheus_client import CollectorRegistry

    from exporter.app.gc_tuning import tune_collector
    from exporter.core.settings import parse_settings
    from exporter.web import create_app

    settings = parse_settings({"redis_url": redis_url, **extra})
    app = create_app(settings, registry=CollectorRegistry())
    tune_collector(settings.gc_young_threshold)
    return app


def aiohttp_session_app(redis_url: str) -> web.Application:
    import redis.asyncio as aioredis
    from aiohttp_session import get_session, session_middleware
    from aiohttp_session.redis_storage import RedisStorage

    client = aioredis.from_url(redis_url)

    async def handler(request: web.Request) -> web.Response:
        session = await get_session(request)
        return web.Response(
            body=orjson.dumps(session.get("session")), content_type="application/json"
        )

    async def close(app: web.Application) -> None:
        await client.aclose()

    app = web.Application(middlewares=[session_middleware(RedisStorage(client))])
    app.router.add_get("/api/sessions/{id}", handler)
    app.on_cleanup.append(close)
    return app


async def count(request: web.Request) -> web.Response:
    from aiohttp_session import get_session

    session = await get_session(request)
    session["n"] = session.get("n", 0) + 1
    return web.Response(body=orjson.dumps({"n": session["n"]}), content_type="application/json")


async def read(request: web.Request) -> web.Response:
    from aiohttp_session import get_session

    session = await get_session(request)
    return web.Response(body=orjson.dumps({"n": session.get("n")}), content_type="application/json")


def counter_app(kind: str, redis_url: str) -> web.Application:
    import logging

    import aiohttp_session

    # A traceback per failed request (RedisStorage while Redis is down) would fill the stderr
    # pipe the benchmark reads only on failure, and stall the server.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    app = web.Application()
    if kind == "counter-tiered":
        from prometheus_client import CollectorRegistry

        from exporter.library.aiohttp_session import TieredStorage

        storage = TieredStorage(redis_url, registry=CollectorRegistry())
        aiohttp_session.setup(app, storage)
        app.cleanup_ctx.append(storage.cleanup_ctx)
    else:
        import redis.asyncio as aioredis
        from aiohttp_session.redis_storage import RedisStorage

        client = aioredis.from_url(redis_url)
        aiohttp_session.setup(app, RedisStorage(client))

        async def close(app: web.Application) -> None:
            await client.aclose()

        app.on_cleanup.append(close)
    app.router.add_get("/count", count)
    app.router.add_get("/read", read)
    return app


def main(argv: list[str]) -> None:
    kind, port, arg = argv[0], int(argv[1]), argv[2]
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if kind == "bare":
        app = bare_app(Path(arg).read_bytes())
    elif kind == "bare-set":
        app = bare_set_app(arg)
    elif kind == "exporter":
        app = exporter_app(arg)
    elif kind.partition("@")[0] in ("exporter-fleet", "exporter-no-fleet"):
        # `@SECONDS`: the snapshot interval (so how often publishing and counter flushes run).
        name, _, interval = kind.partition("@")
        app = exporter_app(
            arg,
            snapshot_interval=float(interval or FLEET_BENCH_INTERVAL),
            fleet_publish=name == "exporter-fleet",
        )
    elif kind == "aiohttp-session":
        app = aiohttp_session_app(arg)
    elif kind in ("counter-redis", "counter-tiered"):
        app = counter_app(kind, arg)
    else:
        raise SystemExit(f"unknown server {kind!r}")
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main(sys.argv[1:])
