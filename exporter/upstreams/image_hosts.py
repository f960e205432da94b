"""Where a rendered Figma image may be downloaded from.

`GET /v1/images/:key` answers with URLs the exporter then fetches, without the token. Those URLs
come from the network, so they are checked before every request, redirects included: only
Figma's image storage, or the configured API's own origin (a proxy, or a test double), over the
scheme Figma uses. Anything else (another host, an internal address, the exporter itself) is
refused, so a compromised or spoofed answer cannot make the exporter fetch, and return, a
resource of its own network.

The hosts are those Figma's answers use (Figma's documentation and the pinned
`@figma/rest-api-spec` name none; these are the ones its API is seen to return):

- `figma-alpha-api.s3.us-west-2.amazonaws.com`: rendered images (`/images/<uuid>`);
- `s3-us-west-2.amazonaws.com/figma-alpha-api/...`: the same bucket, path-style (older answers);
- `s3-alpha.figma.com`, `s3-alpha-sig.figma.com` and any other `*.figma.com`: image fills, signed
  CloudFront URLs.

    >>> image_url_allowed("https://figma-alpha-api.s3.us-west-2.amazonaws.com/images/1", "https://api.figma.com")
    True
    >>> image_url_allowed("http://127.0.0.1:9464/api/session-metrics/persistence", "https://api.figma.com")
    False
"""

from __future__ import annotations

from urllib.parse import urlsplit

IMAGE_HOSTS = frozenset({"figma-alpha-api.s3.us-west-2.amazonaws.com"})
FIGMA_DOMAIN = "figma.com"
# Path-style S3 URLs name the bucket in the path: only Figma's bucket on that host.
PATH_STYLE_BUCKETS = {"s3-us-west-2.amazonaws.com": "/figma-alpha-api/"}
MAX_REDIRECTS = 3


def image_url_allowed(url: str, api_base_url: str) -> bool:
    """Whether the exporter may fetch `url` as a rendered image (see the module docstring)."""
    try:
        parts, api = urlsplit(url), urlsplit(api_base_url)
        port, api_port = parts.port, api.port
    except ValueError:  # a malformed port or host
        return False
    if parts.username is not None or parts.password is not None or not parts.hostname:
        return False
    host = parts.hostname.lower().rstrip(".")
    if (parts.scheme, host, port) == (api.scheme, (api.hostname or "").lower(), api_port):
        return True
    if parts.scheme != "https" or port not in (None, 443):
        return False
    if host in IMAGE_HOSTS or host == FIGMA_DOMAIN or host.endswith("." + FIGMA_DOMAIN):
        return True
    bucket = PATH_STYLE_BUCKETS.get(host)
    return bucket is not None and parts.path.startswith(bucket)
