"""Modules stay small enough to read at a glance (issue 30): none over 500 lines, and the store's
façade, which everything else calls, under 400. Split a module by concept before it grows past."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "exporter"
LIMIT = 500
FACADE = PACKAGE / "store" / "tiered_store.py"
FACADE_LIMIT = 400


def lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_no_module_is_over_500_lines() -> None:
    long = {
        str(p.relative_to(PACKAGE)): lines(p) for p in PACKAGE.rglob("*.py") if lines(p) > LIMIT
    }
    assert not long, long


def test_the_store_facade_is_under_400_lines() -> None:
    assert lines(FACADE) < FACADE_LIMIT
