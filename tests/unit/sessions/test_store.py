"""Value encoding shared by every replica: version and expiry travel with the payload."""

from __future__ import annotations

import pytest

from exporter.core.errors import UnreadableValue
from exporter.store.contract import KIND_TOMBSTONE, StoredValue, decode_value, encode_value


def test_round_trip_keeps_payload_version_and_expiry_to_the_millisecond() -> None:
    original = StoredValue(b'{"a":"b:c"}', 1795000000123456789, 1795000060.25)
    decoded = decode_value(encode_value(original))
    assert decoded is not None
    assert (decoded.payload, decoded.version, decoded.expires_at) == (
        original.payload,
        original.version,
        1795000060.25,
    )


def test_binary_payloads_with_separators_survive() -> None:
    payload = bytes(range(256)) * 4
    decoded = decode_value(encode_value(StoredValue(payload, 1, 2.0)))
    assert decoded is not None and decoded.payload == payload


def test_tombstone_decodes_as_absent() -> None:
    assert decode_value(encode_value(StoredValue(b"", 5, 9.0), KIND_TOMBSTONE)) is None


@pytest.mark.parametrize(
    "raw", [b"", b"garbage", b'{"created": 1, "session": {}}', b"1:2:xpayload", b"a:b:s{}"]
)
def test_bytes_we_did_not_write_are_unreadable_not_a_crash(raw: bytes) -> None:
    with pytest.raises(UnreadableValue) as error:
        decode_value(raw)
    assert error.value.cause == "header"
