"""One redaction for every output: log lines (text and JSON), JSON answers, events, metrics.

    >>> redact("redis://app:hunter2@db:6379/0?password=s3cret&ssl_cert_reqs=none")
    'redis://***@db:6379/0?password=***&ssl_cert_reqs=none'
    >>> redact("token figd_abc123 refused", ["figd_abc123"])
    'token *** refused'

What is masked, in any text (a URL alone, or a log message with URLs inside):
- known secret values passed in (tokens, passwords), wherever they appear;
- a URL's whole userinfo, user name included (in `https://TOKEN:x-oauth-basic@host` the user
  name is the secret);
- the value of every query option whose name says it is a secret (`password`,
  `sentinel_password`, `ssl_password`, `token`, `access_token`, `secret`, `X-Amz-Signature`,
  `X-Amz-Credential`, `api_key`...), in URLs and in `name=value` lists after `?`, `&` or `;`.

Pure text in, text out: imports nothing of ours, so `config`, `logging_setup`, the upstream
clients and the web layer all use this one function.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

MASK = "***"
# Query option names that carry a secret (matched anywhere in the lowercased name, so
# `sentinel_password`, `X-Amz-Security-Token` and `client_secret` are all caught).
SECRET_OPTION = re.compile(
    r"pass(word|wd|phrase)?|pwd|secret|token|signature|credential|api_?key|auth", re.IGNORECASE
)
# scheme://userinfo@ : the userinfo runs to the authority's LAST `@` (passwords may contain `@`).
_USERINFO = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)([^\s/?#]*)@")
# ?name=value, &name=value or ;name=value; the value runs to the next separator or whitespace.
_OPTION = re.compile(r"([?&;])([^=&;#\s?]+)=([^&;#\s]*)")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every secret replaced by `***` (see the module docstring)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    if "://" in text:
        text = _USERINFO.sub(_masked_userinfo, text)
    if "=" in text:
        text = _OPTION.sub(_masked_option, text)
    return text


def _masked_userinfo(match: re.Match[str]) -> str:
    scheme, userinfo = match.group(1), match.group(2)
    return match.group(0) if userinfo in ("", MASK) else f"{scheme}{MASK}@"


def _masked_option(match: re.Match[str]) -> str:
    separator, name, value = match.groups()
    if not value or value == MASK or not SECRET_OPTION.search(name):
        return match.group(0)
    return f"{separator}{name}={MASK}"


def url_secrets(url: str) -> list[str]:
    """The secret values a URL carries (userinfo and secret query options), raw and decoded:
    for a log filter that must also catch them outside the URL (in a library's error text)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    user, _, password = userinfo.partition(":")
    found = [user, password]
    for match in _OPTION.finditer("?" + parts.query):
        if SECRET_OPTION.search(match.group(2)):
            found.append(match.group(3))
    return sorted({value for raw in found for value in (raw, unquote(raw)) if value})
