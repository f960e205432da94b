"""`make speedups`: compile exporter.app.speedups.MODULES with mypyc, in place.

Generated C and objects go to build/mypyc; only the extension modules land beside the sources
(`make clean-speedups` deletes both).
"""

from __future__ import annotations

import os
from pathlib import Path

from exporter.app import speedups

BUILD = Path("build/mypyc")


def build() -> None:
    from mypyc.build import mypycify
    from setuptools import Distribution

    paths = [str(speedups.source(module).relative_to(speedups.ROOT)) for module in speedups.MODULES]
    extensions = mypycify(paths, group_name=speedups.GROUP, target_dir=str(BUILD))
    # A bare Distribution, not setup(): setup() would parse pyproject.toml, and a virtualenv's
    # bundled setuptools may be too old to read it (only the build backend needs to).
    dist = Distribution({"name": "exporter-speedups", "ext_modules": extensions})
    dist.script_args = [
        "build_ext",
        "--inplace",
        f"--build-temp={BUILD / 'temp'}",
        f"--build-lib={BUILD / 'lib'}",
    ]
    dist.parse_command_line()
    dist.run_commands()
    # setuptools leaves a module's extension alone when its generated C did not change (the code
    # lives in the group's library); its old mtime would make `speedups.stale` flag it.
    for module in speedups.compiled():
        for path in speedups.built(module):
            path.touch()
    print("compiled with mypyc:", ", ".join(speedups.compiled()))


if __name__ == "__main__":
    os.chdir(speedups.ROOT)
    build()
