"""The Figma REST client against the Figma double: endpoints, retries, typed errors, metrics."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry

from exporter.core.errors import (
    UpstreamError,
    UpstreamNotFound,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from exporter.core.metrics import Metrics
from exporter.upstreams.figma_client import DEFAULT_MAX_BYTES, FigmaClient
from exporter.upstreams.retry import RetryPolicy
from tests.support.figma_double import DEFAULT_TOKEN, PNG_BYTES, Fault, FigmaDouble

FAST_RETRY = RetryPolicy(max_retries=2, backoff_base=0.01, backoff_cap=0.02, max_retry_after=1.0)


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def metrics(double: FigmaDouble) -> Metrics:
    double.reset()
    return Metrics(CollectorRegistry())


def client(
    http: aiohttp.ClientSession,
    double: FigmaDouble,
    metrics: Metrics,
    *,
    token: str = DEFAULT_TOKEN,
    # Far from the timeouts under test (they pass 0.2 s): the double shares this process's
    # event loop, and 0.5 s expired on a starved machine while it answered.
    timeout: float = 5.0,
    max_response_bytes: int = DEFAULT_MAX_BYTES,
) -> FigmaClient:
    return FigmaClient(
        http,
        token,
        metrics,
        base_url=double.url,
        timeout=timeout,
        retry=FAST_RETRY,
        max_response_bytes=max_response_bytes,
    )


def requests(metrics: Metrics, endpoint: str, status: str) -> float:
    labels = {"service": "figma_api", "endpoint": endpoint, "status": status}
    value = metrics.registry.get_sample_value("session_exporter_upstream_requests_total", labels)
    assert value is not None
    return value


async def test_file_nodes_images_and_me(
    http: aiohttp.ClientSession, double: FigmaDouble, metrics: Metrics
) -> None:
    figma = client(http, double, metrics)
    document = await figma.get_file("FILE1", depth=2)
    assert document["name"] == "Design FILE1"
    assert document["document"]["children"][0]["children"][0]["id"] == "1:2"
    shallow = await figma.get_file("FILE1", depth=1)
    assert shallow["document"]["children"][0]["children"] == []
    nodes = await figma.get_nodes("FILE1", ["1:2", "1:3"])
    assert set(nodes["nodes"]) == {"1:2", "1:3"}
    assert nodes["nodes"]["1:2"]["document"]["type"] == "FRAME"
    url = await figma.render_image("FILE1", "1:2", format="png", scale=2)
    assert url.startswith(double.url + "/_images/")
    image = await figma.download(url)
    assert len(image.data) == PNG_BYTES and image.data[:4] == b"\x89PNG"
    assert image.content_type == "image/png"
    assert (await figma.me())["handle"] == "Designer"
    for endpoint in ("files", "nodes", "images", "image_download", "me"):
        assert requests(metrics, endpoint, "2xx") == (2 if endpoint == "files" else 1)
    assert double.tokens_seen == [DEFAULT_TOKEN] * 5  # the download went without the token


async def test_429_waits_for_retry_after_then_succeeds(
    http: aiohttp.ClientSession, double: FigmaDouble, metrics: Metrics
) -> None:
    double.fail("files", Fault("429", retry_after=0.3))
    started = time.monotonic()
    document = await client(http, double, metrics).get_file("FILE1")
    assert (
        time.monotonic() - started >= 0.29
    )  # the server's wait was honoured, not the 10 ms backoff
    assert document["name"] == "Design FILE1"
    assert double.requests["files"] == 2
    assert requests(metrics, "files", "429") == 1
    assert requests(metrics, "files", "2xx") == 1


async def test_429_beyond_the_bound_fails_at_once_with_retry_after(
    http: aiohttp.ClientSession, double: FigmaDouble, metrics: Metrics
) -> None:
    double.fail("files", Fault("429", retry_after=120))
    started = time.monotonic()
    with pytest.raises(UpstreamError) as caught:
        await client(http, double, metrics).get_file("FILE1")
    assert time.monotonic() - started < 5  # nowhere near the 120 s asked for
    assert caught.value.status == "429" and caught.value.retry_after == 120
    assert double.requests["files"] == 1


async def test_persistent_429_gives_up_after_the_retry_bound(
    http: aiohttp.ClientSession, double: FigmaDouble, metrics: Metrics
) -> None:
    double.fail("nodes", Fault("429", retry_after=0.01), times=None)
    with pytest.raises(UpstreamError) as caught:
        await client(http, double, metrics).get_nodes("FILE1", ["1:2"])
    assert caught.value.status == "429"
    assert double.requests["nodes"] == 3  # first attempt + max_retries
    assert requests(metrics, "nodes", "429") == 3


async def test_5xx_is_retried_then_succeeds(
    http: aiohttp.ClientSession, double: FigmaDouble, metrics: Metrics
) -> None:
    double.fail("images", Fault("500"), times=2)
    url = await client(http, double, metrics).render_image("FILE1", "1:2")
    assert url.endswith(".png")
    assert requests(metrics, "images", "5xx") == 2
    assert requests(metrics, "images", "2xx") == 1


async def test_persistent_5xx_is_a_502_class_error(
    http: aiohttp.ClientSession, double: FigmaDouble, metrics: Metrics
) -> None:
    double.fail("files", Fault("503"), times=None)
    with pytest.raises(UpstreamError) as caught:
        await client(http, double, metrics).get_file("FILE1")
    assert type(caught.value) is UpstreamError
    assert caught.value.status == "5xx" and caught.value.http_status == 503
    assert caught.value.service == "figma_api"
    assert double.requests["files"] == 3


async def test_4xx_is_not_retried(
    http: aiohttp.ClientSession, double: FigmaDouble, metrics: Metrics
) -> None:
    with pytest.raises(UpstreamNotFound):
        await client(http, double, metrics).get_file("missingFILE")
    assert double.requests["files"] == 1
    assert requests(metrics, "files", "4xx") == 1
    with pytest.raises(UpstreamError) as caught:
        await client(http, double, metrics, token="wrong-token").get_file("FILE1")
    assert caught.value.http_status == 403 and "rejected the token" in str(caught.value)
    assert double.requests["files"] == 2


async def test_a_timeout_is_not_retried_and_the_deadline_bounds_the_call(
    http: aiohttp.ClientSession, double: FigmaDouble, metrics: Metrics
) -> None:
    """Issue 12, point 4: `--figma-timeout 2` used to answer after 6.4 s and 3 requests."""
    double.fail("files", Fault("slow", delay=2.0), times=None)
    with pytest.raises(UpstreamTimeout) as caught:
        await client(http, double, metrics, timeout=0.2).get_file("FILE1")
    assert caught.value.status == "timeout"
    assert requests(metrics, "files", "timeout") == 1
    assert double.requests["files"] == 1


async def test_a_slow_answer_is_not_repeated(
    http: aiohttp.ClientSession, double: FigmaDouble, metrics: Metrics
) -> None:
    double.fail("me", Fault("slow", delay=2.0))
    figma = client(http, double, metrics, timeout=0.2)
    with pytest.raises(UpstreamTimeout):
        await figma.me()  # the probe call never retries
    double.fail("nodes", Fault("slow", delay=2.0))
    with pytest.raises(UpstreamTimeout):
        await figma.get_nodes("FILE1", ["1:2"])  # Figma: make it smaller, do not repeat it
    assert requests(metrics, "nodes", "timeout") == 1 and double.requests["nodes"] == 1
    assert (await figma.get_nodes("FILE1", ["1:2"]))["nodes"]  # the next call is a new one


async def test_malformed_json_is_an_error_not_retried(
    http: aiohttp.ClientSession, double: FigmaDouble, metrics: Metrics
) -> None:
    double.fail("files", Fault("malformed"))
    with pytest.raises(UpstreamError, match="malformed JSON"):
        await client(http, double, metrics).get_file("FILE1")
    assert double.requests["files"] == 1
    assert requests(metrics, "files", "error") == 1


async def test_unreachable_api_is_unavailable(
    http: aiohttp.ClientSession, metrics: Metrics
) -> None:
    from tests.support.redis_server import free_port

    figma = FigmaClient(
        http, DEFAULT_TOKEN, metrics, base_url=f"http://127.0.0.1:{free_port()}", retry=FAST_RETRY
    )
    with pytest.raises(UpstreamUnavailable, match="unreachable"):
        await figma.get_file("FILE1")
    assert requests(metrics, "files", "error") == 3


async def test_a_10_mb_image_downloads_whole(
    http: aiohttp.ClientSession, double: FigmaDouble, metrics: Metrics
) -> None:
    double.image_size = 10 * 1024 * 1024
    figma = client(http, double, metrics, timeout=10)
    image = await figma.download(await figma.render_image("FILE1", "1:2"))
    assert len(image.data) == 10 * 1024 * 1024 == double.bytes_served


async def test_images_over_the_limit_are_refused(
    http: aiohttp.ClientSession, double: FigmaDouble, metrics: Metrics
) -> None:
    double.image_size = 300_000
    figma = client(http, double, metrics, max_response_bytes=100_000)
    with pytest.raises(UpstreamError, match="larger than 100000 bytes"):
        await figma.download(await figma.render_image("FILE1", "1:2"))


async def test_a_node_figma_cannot_render_is_not_found(
    http: aiohttp.ClientSession, double: FigmaDouble, metrics: Metrics
) -> None:
    with pytest.raises(UpstreamNotFound, match="no image for node 1:404"):
        await client(http, double, metrics).render_image("FILE1", "1:404")
    assert requests(metrics, "images", "2xx") == 1


async def test_errors_never_carry_the_token(
    http: aiohttp.ClientSession, double: FigmaDouble, metrics: Metrics
) -> None:
    figma = client(http, double, metrics, timeout=0.2)
    double.fail("files", Fault("500"), times=None)
    double.fail("nodes", Fault("slow"), times=None)
    double.fail("images", Fault("403"), times=None)
    errors: list[BaseException] = []
    for call in (
        figma.get_file("FILE1"),
        figma.get_nodes("FILE1", ["1:2"]),
        figma.render_image("FILE1", "1:2"),
    ):
        with pytest.raises(UpstreamError) as caught:
            await call
        errors.append(caught.value)
    for error in errors:
        assert DEFAULT_TOKEN not in str(error) and DEFAULT_TOKEN not in repr(error.__dict__)
