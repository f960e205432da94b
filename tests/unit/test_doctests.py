"""Every example in a docstring of exporter/, mixin/ and grafana/ runs and gives what it shows.

The modules are found by walking the packages, so a new or moved module is covered without a
list to keep. Importing any of them has no side effect beyond definitions (the `__main__` modules
act only under `if __name__ == "__main__"`), so each is imported as the suite imports it anyway.
"""

from __future__ import annotations

import doctest
import importlib
import io
import pkgutil
import types

import pytest

import exporter
import grafana
import mixin

PACKAGES = (exporter, mixin, grafana)
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def module_names() -> list[str]:
    names = []
    for package in PACKAGES:
        names.append(package.__name__)
        prefix = f"{package.__name__}."
        names += [info.name for info in pkgutil.walk_packages(package.__path__, prefix)]
    return sorted(names)


def examples(module: types.ModuleType) -> list[doctest.DocTest]:
    """The module's docstring examples, those of its own classes and functions included."""
    return [test for test in doctest.DocTestFinder().find(module) if test.examples]


def run_examples(module: types.ModuleType) -> tuple[doctest.TestResults, str]:
    """Run every example of `module`; the results and doctest's report of what failed."""
    report = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in examples(module):
        runner.run(test, out=report.write)
    return doctest.TestResults(runner.failures, runner.tries), report.getvalue()


def with_examples() -> list[str]:
    return [name for name in module_names() if examples(importlib.import_module(name))]


@pytest.mark.parametrize("name", with_examples())
def test_docstring_examples_hold(name: str) -> None:
    results, report = run_examples(importlib.import_module(name))
    assert results.attempted, f"{name}: no example ran"
    assert not results.failed, report


def test_a_wrong_example_fails() -> None:
    """The runner reports a failure, not only successes."""
    module = types.ModuleType("wrong", "An example that lies:\n\n>>> 1 + 1\n3\n")
    results, report = run_examples(module)
    assert results == doctest.TestResults(failed=1, attempted=1)
    assert "Expected:\n    3\nGot:\n    2" in report


def test_the_packages_have_examples() -> None:
    """A walk that finds nothing (a package renamed, a path wrong) must not pass silently."""
    assert len(with_examples()) >= 40
