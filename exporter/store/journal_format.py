"""The durable journal's on-disk record format: pure encoding and decoding, no I/O.

A journal file is `FILE_MAGIC` followed by records. Each record is a sync marker, the body's
length and its CRC-32, then the body (kind, versions, expiries, key, payload). The marker lets a
reader skip a damaged region and find the next intact record; the checksum means a torn or
flipped record is reported, never replayed as garbage.

What follows the last intact record is either a *torn tail* (an append cut short by a crash or a
full disk: a prefix of the magic or of a record, whose declared length runs past the end; it was
never acknowledged and is cut off) or damage (anything else: reported like damage in the middle):

    >>> item = ReplayItem("s:a", 7, 9e9, StoredValue(b"{}", 7, 9e9))
    >>> decode_records(FILE_MAGIC + encode_record(item)).items == [item]
    True
    >>> decode_records(FILE_MAGIC + encode_record(item)[:-3]).torn_tail  # cut off, not damage
    47
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from exporter.store.contract import KIND_TOMBSTONE, KIND_VALUE, ReplayItem, StoredValue

FILE_MAGIC = b"SMJ1\n"
SYNC = b"\xa5\x5a"
_HEAD = struct.Struct("<2sII")  # sync marker, body length, crc32(body)
# kind, item.version, item.expires_at, value.version, value.expires_at, key length
_BODY = struct.Struct("<cqdqdH")
MAX_BODY = 1 << 30  # a length above this is damage, not a record


@dataclass(slots=True)
class Decoded:
    """What a journal file holds: its intact records in order, and what could not be read.

    `intact_end` is where the torn tail (if any) starts: the end of the last intact record, else
    of the magic, else 0. Appends go there once the tail is cut off."""

    items: list[ReplayItem] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    corrupt_regions: int = 0
    corrupt_bytes: int = 0
    torn_tail: int = 0
    intact_end: int = 0


def encode_record(item: ReplayItem) -> bytes:
    key = item.key.encode()
    value = item.value
    if value is None:
        body = _BODY.pack(KIND_TOMBSTONE, item.version, item.expires_at, 0, 0.0, len(key)) + key
    else:
        fields = (KIND_VALUE, item.version, item.expires_at, value.version, value.expires_at)
        body = _BODY.pack(*fields, len(key)) + key + value.payload
    return _HEAD.pack(SYNC, len(body), zlib.crc32(body)) + body


def decode_records(data: bytes) -> Decoded:
    """Every intact record of `data`; damaged regions are skipped up to the next intact one."""
    out = Decoded()
    bad_from: int | None = None
    if data.startswith(FILE_MAGIC):
        pos = out.intact_end = len(FILE_MAGIC)
    elif FILE_MAGIC.startswith(data):  # empty, or the first append was cut inside the magic
        out.torn_tail = len(data)
        return out
    else:  # a damaged header: whatever precedes the first intact record is damage
        bad_from, pos = 0, 0
    while pos < len(data):
        parsed = _parse_at(data, pos)
        if parsed is None:
            if bad_from is None:
                bad_from = pos
            pos = _next_sync(data, pos + 1)
            continue
        if bad_from is not None:
            _count_damage(out, bad_from, pos)
            bad_from = None
        item, end = parsed
        out.items.append(item)
        out.sizes.append(end - pos)
        pos = out.intact_end = end
    if bad_from is not None:
        if _is_torn(data, bad_from):
            out.torn_tail = len(data) - bad_from
        else:
            _count_damage(out, bad_from, len(data))
    return out


def _is_torn(data: bytes, start: int) -> bool:
    """Whether `data[start:]` (the end of the file, no intact record in it) is an append cut
    short: a prefix of a record header, or a header whose body runs past the end of the file.
    Anything else there (a complete record failing its checksum, zeros) is damage."""
    tail = data[start:]
    if len(tail) < _HEAD.size:
        return SYNC.startswith(tail[: len(SYNC)])
    sync, length, _ = _HEAD.unpack_from(tail)
    declared: int = length
    return sync == SYNC and _BODY.size <= declared <= MAX_BODY and _HEAD.size + declared > len(tail)


def _count_damage(out: Decoded, start: int, end: int) -> None:
    if end <= start:
        return
    out.corrupt_regions += 1
    out.corrupt_bytes += end - start


def _next_sync(data: bytes, start: int) -> int:
    found = data.find(SYNC, start)
    return len(data) if found < 0 else found


def _parse_at(data: bytes, pos: int) -> tuple[ReplayItem, int] | None:
    """The record starting at `pos` and where it ends, or None if none intact starts there."""
    if pos + _HEAD.size > len(data):
        return None
    sync, length, crc = _HEAD.unpack_from(data, pos)
    start = pos + _HEAD.size
    end = start + length
    if sync != SYNC or length < _BODY.size or length > MAX_BODY or end > len(data):
        return None
    body = data[start:end]
    if zlib.crc32(body) != crc:
        return None
    item = _decode_body(body)
    return None if item is None else (item, end)


def _decode_body(body: bytes) -> ReplayItem | None:
    kind, version, expires_at, value_version, value_expires, key_len = _BODY.unpack_from(body)
    key_end = _BODY.size + key_len
    if key_end > len(body):
        return None
    try:
        key = body[_BODY.size : key_end].decode()
    except UnicodeDecodeError:
        return None
    if kind == KIND_TOMBSTONE:
        return ReplayItem(key, version, expires_at, None)
    if kind != KIND_VALUE:
        return None
    return ReplayItem(
        key, version, expires_at, StoredValue(body[key_end:], value_version, value_expires)
    )
