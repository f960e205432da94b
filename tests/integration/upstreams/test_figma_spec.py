"""The exporter's Figma requests and the Figma double's answers, checked against Figma's official
OpenAPI spec (npm `@figma/rest-api-spec`, pinned in tests/npm): every path, query parameter and
response body, error answers included, with documents of realistic size."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry

from exporter.core.errors import UpstreamError
from exporter.core.metrics import Metrics
from exporter.upstreams.figma_client import FigmaClient
from exporter.upstreams.retry import RetryPolicy
from tests.support.figma_double import DEFAULT_OAUTH_TOKEN, DEFAULT_TOKEN, Fault, FigmaDouble
from tests.support.figma_spec import FigmaSpec
from tests.support.npm_packages import FIGMA_SPEC, require

NO_RETRY = RetryPolicy(max_retries=0)


@pytest.fixture(scope="module")
def spec() -> FigmaSpec:
    return FigmaSpec.load(require(FIGMA_SPEC))


@pytest_asyncio.fixture(scope="module")
async def checked(spec: FigmaSpec) -> AsyncIterator[FigmaDouble]:
    double = await FigmaDouble(spec=spec).start()
    yield double
    await double.close()


@pytest_asyncio.fixture
async def figma(checked: FigmaDouble) -> AsyncIterator[FigmaClient]:
    checked.reset()
    async with aiohttp.ClientSession() as http:
        yield FigmaClient(
            http,
            DEFAULT_TOKEN,
            Metrics(CollectorRegistry()),
            base_url=checked.url,
            timeout=5,
            retry=NO_RETRY,
        )


def test_the_pinned_spec_is_the_one_in_the_lock_file(spec: FigmaSpec) -> None:
    lock = orjson.loads((FIGMA_SPEC.parents[4] / "package-lock.json").read_bytes())
    assert spec.version == lock["packages"]["node_modules/@figma/rest-api-spec"]["version"]


async def test_every_call_the_exporter_makes_is_valid_and_so_are_the_answers(
    figma: FigmaClient, checked: FigmaDouble
) -> None:
    document = await figma.get_file("FILE1")
    await figma.get_file("FILE1", depth=2)
    await figma.get_file("FILE1", ids=["1:2", "1:3"])
    nodes = await figma.get_nodes("FILE1", [f"1:{i}" for i in range(2, 12)])
    for fmt, scale in (("png", 2.0), ("jpg", 1.0), ("svg", 1.0), ("pdf", 0.5)):
        await figma.render_image("FILE1", "1:2", format=fmt, scale=scale)
    await figma.me()
    meta = await figma.get_file_meta("FILE1")
    checked.touch("FILE1")
    assert (await figma.get_file_meta("FILE1")).version != meta.version
    assert checked.checked == 11
    assert checked.violations == []
    # Realistic size: hundreds of nodes, not a toy tree.
    assert len(orjson.dumps(document)) > 200_000
    assert len(orjson.dumps(nodes)) > 50_000


@pytest.mark.parametrize(
    ("endpoint", "fault"),
    [
        ("files", Fault("404")),
        ("files", Fault("400")),
        ("files", Fault("403")),
        ("me", Fault("403_scope")),
        ("files", Fault("429", retry_after=60, limit_type="low", plan_tier="pro")),
        ("nodes", Fault("500")),
        ("meta", Fault("404")),
        ("meta", Fault("403")),
        ("meta", Fault("429", retry_after=60, limit_type="high", plan_tier="org")),
    ],
)
async def test_error_answers_follow_the_spec(
    figma: FigmaClient, checked: FigmaDouble, endpoint: str, fault: Fault
) -> None:
    checked.fail(endpoint, fault)
    with pytest.raises(UpstreamError):
        if endpoint == "me":
            await figma.me()
        elif endpoint == "nodes":
            await figma.get_nodes("FILE1", ["1:2"])
        elif endpoint == "meta":
            await figma.get_file_meta("FILE1")
        else:
            await figma.get_file("FILE1")
    assert checked.checked == 1
    assert checked.violations == []


async def test_oauth_calls_are_valid_too(checked: FigmaDouble) -> None:
    checked.reset()
    async with aiohttp.ClientSession() as http:
        figma = FigmaClient(
            http,
            None,
            Metrics(CollectorRegistry()),
            oauth_token=DEFAULT_OAUTH_TOKEN,
            base_url=checked.url,
            timeout=5,
            retry=NO_RETRY,
        )
        assert (await figma.get_file("FILE1", depth=1))["name"]
    assert checked.violations == []


def test_the_checker_is_not_vacuous(spec: FigmaSpec) -> None:
    assert spec.request_errors("GET", "/v1/files/K", {"depth": "two"})
    assert spec.request_errors("GET", "/v1/files/K", {"fileKey": "K"})
    assert spec.request_errors("GET", "/v1/images/K", {})  # ids is required
    assert spec.request_errors("GET", "/v1/nope", {})
    assert spec.request_errors("GET", "/v1/files/K/meta", {"depth": "1"})
    assert spec.response_errors("GET", "/v1/files/K/meta", 200, {"file": {"name": "x"}})
    assert spec.response_errors("GET", "/v1/files/K", 200, {"name": "no document"})
    assert spec.response_errors(
        "GET",
        "/v1/files/K/nodes",
        200,
        {
            "name": "x",
            "role": "viewer",
            "lastModified": "",
            "editorType": "figma",
            "thumbnailUrl": "",
            "version": "1",
            "nodes": {"1:2": {"document": {"id": "1:2"}}},
        },
    )
