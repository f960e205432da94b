"""Session JSON shape and id/TTL validation."""

from __future__ import annotations

import math

import orjson
import pytest

from exporter.core.errors import UnreadableValue
from exporter.sessions.manager import check_ttl
from exporter.sessions.session import Session, session_key, valid_id


def test_api_json_has_the_contract_fields_with_rfc3339_utc_times() -> None:
    session = Session("abc", {"k": [1, 2]}, created_at=1700000000.5, expires_at=1700003600.5)
    assert orjson.loads(session.json_bytes()) == {
        "id": "abc",
        "data": {"k": [1, 2]},
        "created_at": "2023-11-14T22:13:20.500Z",
        "expires_at": "2023-11-14T23:13:20.500Z",
    }


def test_document_round_trip() -> None:
    session = Session("abc", {"k": 1}, 1.5, 61.5, version=7)
    assert Session.from_document("abc", session.to_document(), 7) == session


def test_ids_outside_the_token_alphabet_are_rejected() -> None:
    assert valid_id("Az09_-")
    for bad in ("", "a}b", "a{b", "a b", "x" * 129, "é"):
        assert not valid_id(bad)


def test_session_keys_carry_a_hash_tag() -> None:
    assert session_key("abc") == "s:{abc}"


@pytest.mark.parametrize("ttl", [0, -1, True, "60", math.inf, math.nan, 10**9, None])
def test_bad_ttls_are_rejected(ttl: object) -> None:
    with pytest.raises(ValueError):
        check_ttl(ttl)


def test_good_ttl_is_a_float() -> None:
    assert check_ttl(5) == 5.0


def test_the_api_body_is_spliced_from_the_document_byte_for_byte() -> None:
    data = {"k": [1, {"created_at": 2}], "s": "é\u2028\"'", "n": None}
    reference = orjson.dumps(Session("abc", data, 1700000000.123, 1700003600.5).as_json())
    stored = Session("abc", data, 1700000000.123, 1700003600.5)
    stored.to_document()
    assert stored.json_bytes() == reference
    older = orjson.dumps({"data": data, "created_at": 1700000000.123, "expires_at": 1700003600.5})
    assert Session.from_document("abc", older, 3).json_bytes() == reference  # older key order


def test_a_stored_session_keeps_only_its_document() -> None:
    session = Session("abc", {"k": 1}, 1.5, 61.5)
    document = session.to_document()
    assert session.data == {"k": 1} and session.to_document() is document
    loaded = Session.from_document("abc", document, 7)
    assert loaded.data == {"k": 1} and loaded.to_document() is document  # the payload, shared


@pytest.mark.parametrize(
    ("payload", "cause"),
    [
        (b"{not json", "json"),
        (b"", "json"),
        (b'{"created": 1, "session": {"a": 1}}', "shape"),  # aiohttp-session's RedisStorage
        (b'{"created_at": 1, "expires_at": 2, "data": []}', "shape"),
        (b'{"created_at": "x", "expires_at": 2, "data": {}}', "shape"),
        (b"[1, 2]", "shape"),
    ],
)
def test_a_document_we_did_not_write_is_unreadable(payload: bytes, cause: str) -> None:
    with pytest.raises(UnreadableValue) as error:
        Session.from_document("abc", payload, 1)
    assert error.value.cause == cause
