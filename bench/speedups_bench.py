"""The mypyc build (`make speedups`) against pure Python, when it is present: the memory-tier get
measured compiled in this process and pure in a child that imports the compiled modules from
their `.py`, alternately, three times each.

    python -m bench.speedups_bench exporter.core.window ...  # the child: µs per instrumented get

Nothing from exporter is imported at the top: the child must install its finder first.
"""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec, PathFinder
from pathlib import Path
from statistics import median
from types import ModuleType

from bench.support import Result

ALTERNATIONS = 3
ROUNDS = 20


class PureSource:
    """A meta-path finder ahead of the default one: these modules from their source."""

    def __init__(self, modules: Sequence[str]) -> None:
        self.modules = frozenset(modules)

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name not in self.modules:
            return None
        spec = PathFinder.find_spec(name, path)  # the extension module beside the source
        if spec is None or spec.origin is None:
            return None
        source = Path(spec.origin).with_name(name.rpartition(".")[2] + ".py")
        return importlib.util.spec_from_file_location(name, source)


async def instrumented_get_us() -> float:
    from bench.store_bench import memory_get

    return (await memory_get(rounds=ROUNDS))[0].value


def pure_get_us(modules: list[str]) -> float:
    done = subprocess.run(
        [sys.executable, "-m", "bench.speedups_bench", *modules],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.split()[-1])


async def run() -> list[Result]:
    from exporter.app import speedups

    if speedups.stale():
        print(
            f"stale mypyc build of {', '.join(speedups.stale())}: the figures above ran the old "
            "code; `make speedups` rebuilds it, `make clean-speedups` removes it"
        )
        return []
    compiled = [
        module
        for module in speedups.MODULES
        if not (importlib.import_module(module).__file__ or "").endswith(".py")
    ]
    if not compiled:
        print("mypyc build absent (pure Python): `make speedups` compiles the hot modules")
        return []
    ours, pure = [], []
    for _ in range(ALTERNATIONS):
        ours.append(await instrumented_get_us())
        pure.append(pure_get_us(compiled))
    value, baseline = median(ours), median(pure)
    return [
        Result(
            "memory get: mypyc-compiled (make speedups) vs pure Python",
            value,
            baseline,
            "µs/op",
            "≤ 0.85x",
            value / baseline <= 0.85,
            f"compiled [{', '.join(f'{x:.2f}' for x in ours)}], pure "
            f"[{', '.join(f'{x:.2f}' for x in pure)}]; {len(compiled)} modules compiled",
        )
    ]


def main(modules: list[str]) -> None:
    sys.meta_path.insert(0, PureSource(modules))
    try:  # the event loop `python -m bench` runs the parent on
        import uvloop
    except ImportError:
        us = asyncio.run(instrumented_get_us())
    else:
        us = uvloop.run(instrumented_get_us())
    # (the web modules are not imported by a store read)
    loaded = [sys.modules[module].__file__ or "" for module in modules if module in sys.modules]
    assert all(path.endswith(".py") for path in loaded), loaded
    print(f"{us:.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])
