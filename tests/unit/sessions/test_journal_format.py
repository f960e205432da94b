"""The journal's record format, pure: what follows the last intact record is a torn tail (cut
off, never acknowledged) or damage (reported), and records after damage are still found."""

from __future__ import annotations

import pytest

from exporter.store.contract import ReplayItem, StoredValue
from exporter.store.journal_format import FILE_MAGIC, decode_records, encode_record


def put(key: str, version: int) -> ReplayItem:
    return ReplayItem(key, version, 9e9, StoredValue(b"payload-%d" % version, version, 9e9))


A, B, C = put("s:a", 1), put("s:b", 2), put("s:c", 3)
GOOD = FILE_MAGIC + encode_record(A) + encode_record(B)


@pytest.mark.parametrize(
    "tail",
    [
        pytest.param(encode_record(C)[:1], id="one-byte-of-the-sync-marker"),
        pytest.param(encode_record(C)[:7], id="inside-the-header"),
        pytest.param(encode_record(C)[:-1], id="all-but-the-last-byte"),
        pytest.param(encode_record(C) + encode_record(C)[:20], id="a-batch-cut-in-its-second"),
    ],
)
def test_an_append_cut_short_is_a_torn_tail_not_damage(tail: bytes) -> None:
    decoded = decode_records(GOOD + tail)
    whole = len(encode_record(C)) if len(tail) > len(encode_record(C)) else 0
    assert decoded.items[:2] == [A, B] and decoded.corrupt_regions == 0
    assert decoded.torn_tail == len(tail) - whole
    assert decoded.intact_end == len(GOOD) + whole


@pytest.mark.parametrize("magic", [b"", FILE_MAGIC[:3]])
def test_a_file_cut_inside_its_magic_is_torn(magic: bytes) -> None:
    decoded = decode_records(magic)
    assert (decoded.items, decoded.torn_tail, decoded.intact_end) == ([], len(magic), 0)


@pytest.mark.parametrize(
    "tail",
    [
        pytest.param(b"\0" * 64, id="zeros"),
        pytest.param(bytes(encode_record(C)[:-1]) + b"!", id="a-whole-record-failing-its-crc"),
        pytest.param(b"garbage", id="bytes-that-are-no-header"),
    ],
)
def test_anything_else_at_the_end_is_damage(tail: bytes) -> None:
    decoded = decode_records(GOOD + tail)
    assert decoded.items == [A, B] and decoded.torn_tail == 0
    assert (decoded.corrupt_regions, decoded.corrupt_bytes) == (1, len(tail))
    assert decoded.intact_end == len(GOOD)


def test_records_after_a_damaged_region_are_found() -> None:
    flipped = bytearray(encode_record(B))
    flipped[-2] ^= 0x01
    decoded = decode_records(FILE_MAGIC + encode_record(A) + bytes(flipped) + encode_record(C))
    assert decoded.items == [A, C]
    assert (decoded.corrupt_regions, decoded.corrupt_bytes) == (1, len(flipped))


def test_a_torn_append_followed_by_later_ones_is_damage_in_the_middle() -> None:
    """What appends after a torn one left before this version: the records after it survive."""
    decoded = decode_records(GOOD + encode_record(C)[:30] + encode_record(put("s:d", 4)))
    assert [item.key for item in decoded.items] == ["s:a", "s:b", "s:d"]
    assert decoded.corrupt_regions == 1 and decoded.torn_tail == 0
