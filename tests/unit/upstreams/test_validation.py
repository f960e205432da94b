"""Input checks shared by the manager and the HTTP routes: what reaches Figma is well-formed."""

from __future__ import annotations

import pytest

from exporter.upstreams.figma_manager import (
    check_file_key,
    check_node_id,
    check_node_ids,
    check_screenshot,
)


@pytest.mark.parametrize("key", ["abc", "FGhd0PrVvWxYz1234567890", "a" * 128])
def test_valid_file_keys(key: str) -> None:
    assert check_file_key(key) == key


@pytest.mark.parametrize("key", ["", "a" * 129, "../etc", "abc def", "key?x=1", "ключ", "a/b"])
def test_invalid_file_keys(key: str) -> None:
    with pytest.raises(ValueError, match="file_key"):
        check_file_key(key)


@pytest.mark.parametrize(
    "node_id, normal",
    [("1:2", "1:2"), ("12-34", "12:34"), ("I1:2;3:4", "I1:2;3:4"), ("0:0", "0:0")],
)
def test_valid_node_ids(node_id: str, normal: str) -> None:
    assert check_node_id(node_id) == normal


@pytest.mark.parametrize(
    "node_id", ["", "1", "a:b", "1:2:3", "1:2,1:3", "1:2;", " 1:2", "1:" + "9" * 300]
)
def test_invalid_node_ids(node_id: str) -> None:
    with pytest.raises(ValueError, match="node id"):
        check_node_id(node_id)


def test_node_id_lists() -> None:
    assert check_node_ids(["1:2", "3-4"]) == ["1:2", "3:4"]
    with pytest.raises(ValueError, match="at least one"):
        check_node_ids([])
    with pytest.raises(ValueError, match="at most 100"):
        check_node_ids(["1:2"] * 101)


@pytest.mark.parametrize(
    "source, format, scale",
    [("api", "png", 1), ("api", "svg", 0.01), ("api", "pdf", 4), ("mcp", "png", 2.5)],
)
def test_valid_screenshot_requests(source: str, format: str, scale: float) -> None:
    check_screenshot(source, format, scale)


@pytest.mark.parametrize(
    "source, format, scale, message",
    [
        ("desktop", "png", 1, "source"),
        ("api", "gif", 1, "format"),
        ("api", "png", 0, "scale"),
        ("api", "png", 4.5, "scale"),
        ("api", "png", True, "scale"),
        ("api", "png", "2", "scale"),
        ("mcp", "svg", 1, "PNG only"),
    ],
)
def test_invalid_screenshot_requests(source: str, format: str, scale: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_screenshot(source, format, scale)  # type: ignore[arg-type]
