"""Rendered images are fetched only from Figma's image hosts (or the API's own origin), whatever
the API answers: the exporter process against the Figma double made hostile.

Before: the image URL was fetched with redirects allowed, to any host, and its body returned; a
fake upstream made the exporter return its own `/api/session-metrics/persistence`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from tests.support.exporter_cli import ExporterCli
from tests.support.figma_double import DEFAULT_TOKEN, FigmaDouble

SHOT = {"node_id": "1:2", "source": "api", "format": "png", "scale": 1}
FILE_KEYS = (f"FILE{n}" for n in itertools.count())  # a new file each time: never a cached image


@pytest.fixture(scope="module")
async def exporter(
    double: FigmaDouble, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ExporterCli]:
    env = {"SESSION_EXPORTER_FIGMA_TOKEN": DEFAULT_TOKEN}
    workdir = tmp_path_factory.mktemp("figma-images")
    running = ExporterCli(workdir, ["--figma-api-url", double.url], env).start()
    try:
        await asyncio.to_thread(running.wait_ready)  # the double answers from this loop
        yield running
    finally:
        await asyncio.to_thread(running.stop)
    assert "Traceback" not in running.log()


@pytest.fixture(autouse=True)
def fresh_double(double: FigmaDouble) -> Iterator[None]:
    yield
    double.reset()


async def screenshot(exporter: ExporterCli, **overrides: object) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{exporter.base}/api/figma/screenshots?download=1",
            json={**SHOT, "file_key": next(FILE_KEYS), **overrides},
        ) as answer,
    ):
        return answer.status, await answer.read()


async def test_an_image_url_elsewhere_is_refused(
    double: FigmaDouble, exporter: ExporterCli
) -> None:
    double.image_location = f"{exporter.base}/api/session-metrics/persistence"
    status, body = await screenshot(exporter)
    assert status == 502 and b"not Figma's" in body
    assert b"replay" not in body and b"redis" not in body  # nothing of the persistence report


async def test_a_redirect_elsewhere_is_refused_and_one_within_is_followed(
    double: FigmaDouble, exporter: ExporterCli
) -> None:
    double.download_redirect = f"{exporter.base}/api/session-metrics/persistence"
    status, body = await screenshot(exporter)
    assert status == 502 and b"replay" not in body and b"redis" not in body
    double.download_redirect = f"{double.url}/_images/K/1-2.png?hop=1"  # the API's own origin
    status, body = await screenshot(exporter)
    assert status == 200 and body.startswith(b"\x89PNG")


async def test_node_ids_are_ascii_digits_only(double: FigmaDouble, exporter: ExporterCli) -> None:
    """`\\d` accepted any Unicode digit (fullwidth here) and sent it on to Figma."""
    before = double.requests["images"], double.requests["nodes"]
    status, body = await screenshot(exporter, node_id="\uff11:\uff12")
    assert status == 400 and b"node" in body
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{exporter.base}/api/figma/files/FILE1/nodes?ids=\uff11:\uff12") as nodes,
    ):
        assert nodes.status == 400
    assert (double.requests["images"], double.requests["nodes"]) == before
