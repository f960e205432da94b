"""One redaction for every output: each secret form, in URLs and in free text."""

from __future__ import annotations

import pytest

from exporter.core.redaction import redact, url_secrets


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("redis://:pw@h:6379/0", "redis://***@h:6379/0"),
        ("redis://user:pw@h:6379/0", "redis://***@h:6379/0"),
        ("https://TOKEN:x-oauth-basic@git.example/r", "https://***@git.example/r"),
        ("https://TOKEN@git.example/r", "https://***@git.example/r"),
        ("redis://:p@ss@h:1/0", "redis://***@h:1/0"),  # an @ in the password
        ("redis+cluster://:pw@h1:1,h2:2", "redis+cluster://***@h1:1,h2:2"),
        ("unix://:pw@/run/redis.sock?db=1", "unix://***@/run/redis.sock?db=1"),
        ("redis://h:1/0?password=s3cret", "redis://h:1/0?password=***"),
        (
            "redis+sentinel://s:1/m?sentinel_password=a&password=b&db=2",
            "redis+sentinel://s:1/m?sentinel_password=***&password=***&db=2",
        ),
        (
            "rediss://h/0?ssl_password=k&ssl_cert_reqs=none",
            "rediss://h/0?ssl_password=***&ssl_cert_reqs=none",
        ),
        ("http://h/mcp?token=t&x=1", "http://h/mcp?token=***&x=1"),
        (
            "https://s3/x.png?X-Amz-Credential=c&X-Amz-Signature=s&X-Amz-Expires=60",
            "https://s3/x.png?X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Expires=60",
        ),
        (
            "https://cdn/img?Expires=1&Key-Pair-Id=K&Signature=S",
            "https://cdn/img?Expires=1&Key-Pair-Id=K&Signature=***",
        ),
        ("connecting to redis://:pw@db:1/0 failed", "connecting to redis://***@db:1/0 failed"),
        ("GET /x?api_key=abc&q=1", "GET /x?api_key=***&q=1"),
    ],
)
def test_every_secret_form_is_masked(text: str, redacted: str) -> None:
    assert redact(text) == redacted


def test_ordinary_text_and_urls_are_left_alone() -> None:
    for text in (
        "redis://localhost:6379/0",
        "https://api.figma.com/v1/files/KEY?depth=2&ids=1:2",
        "a mail to ada@example.com, a path /a@b, key=value; password: none",
        "",
    ):
        assert redact(text) == text


def test_known_values_are_masked_anywhere_and_masking_is_idempotent() -> None:
    masked = redact("token figd_123 and figd_123x", ["figd_123", ""])
    assert masked == "token *** and ***x"
    url = "redis://u:pw@h/0?password=x"
    assert redact(redact(url)) == redact(url) == "redis://***@h/0?password=***"


def test_the_secrets_a_url_carries() -> None:
    url = "redis+sentinel://app:p%40ss@h:1/m?sentinel_password=s3&db=1"
    assert url_secrets(url) == sorted({"app", "p%40ss", "p@ss", "s3"})
    assert url_secrets("redis://h:1/0") == []
    assert url_secrets("http://[::1") == []  # malformed: nothing to find, no error
