"""Held values the cycle collector need not walk.

CPython's cyclic garbage collector walks every tracked container in each full collection, with the
event loop stopped, and it starts one by itself whenever a quarter more objects have survived than
the last one left. A memory tier holding 100,000 sessions kept three tracked objects per session
(the entry tuple, its `StoredValue`, the decoded `Session`): 310,000 objects, and a full collection
took 108 ms instead of 17 ms with the tier empty (`bench/gc_bench.py`), close to the 250 ms a Redis
command may take before it counts as failed.

None of those objects can be part of a reference cycle: they hold bytes, numbers, strings, the
session's JSON data and each other (entry → value → session), never a reference back. CPython
untracks such containers itself when it can tell (tuples and dicts of atomic values); of our own
classes it cannot, so `untrack` says so, through the C API's `PyObject_GC_UnTrack`. An untracked
object is still freed by reference counting the moment it is dropped; only a cycle through it would
never be collected, which is why only these acyclic types are passed here.

Why not `gc.freeze()`: it exempts every object alive at the call, connections and tasks included,
whose cycles would then never be collected once they end.

    >>> import gc
    >>> held = (1.0, b"payload", object())
    >>> untrack(held)
    >>> gc.is_tracked(held)
    False
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, MutableMapping
from typing import TypeVar, cast

K = TypeVar("K")
V = TypeVar("V")


def _no_op(obj: object) -> None:
    """Off CPython there is no C API to call: everything stays tracked, as before."""


def _gc_untrack() -> Callable[[object], None]:
    try:
        untrack = ctypes.pythonapi.PyObject_GC_UnTrack
    except AttributeError:
        return _no_op
    untrack.argtypes = [ctypes.py_object]
    untrack.restype = None
    return cast(Callable[[object], None], untrack)


# For instances of container types only (tuples, and instances of classes defined in Python or
# compiled by mypyc): the C function reads the collector's header, which other objects lack.
untrack: Callable[[object], None] = _gc_untrack()


def hold(mapping: MutableMapping[K, V], key: K, entry: V, value: object) -> None:
    """`mapping[key] = entry`, `entry` and the `value` inside it untracked first: inserting a
    tracked object into an untracked dict makes the dict tracked again.

    A function of this (uncompiled) module, not inline code: compiled with mypyc, the caller's
    entry tuple is unboxed, and each use of it as an object is a new tuple; only the one stored
    must be untracked."""
    untrack(value)
    untrack(entry)
    mapping[key] = entry
