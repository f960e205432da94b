"""Where rendered Figma images may be downloaded from."""

from __future__ import annotations

import pytest

from exporter.upstreams.image_hosts import image_url_allowed

API = "https://api.figma.com"


@pytest.mark.parametrize(
    "url",
    [
        "https://figma-alpha-api.s3.us-west-2.amazonaws.com/images/8968677b-145f",
        "https://s3-us-west-2.amazonaws.com/figma-alpha-api/img/4448/9c63/9057",
        "https://s3-alpha-sig.figma.com/img/2af4/1e4b/8e1b?Expires=1&Signature=x",
        "https://s3-alpha.figma.com/img/abc",
        "https://FIGMA-ALPHA-API.s3.us-west-2.amazonaws.com./images/1",
    ],
)
def test_figmas_image_hosts(url: str) -> None:
    assert image_url_allowed(url, API)


@pytest.mark.parametrize(
    "url",
    [
        "http://figma-alpha-api.s3.us-west-2.amazonaws.com/images/1",  # not https
        "https://figma-alpha-api.s3.us-west-2.amazonaws.com:8443/images/1",
        "https://s3-us-west-2.amazonaws.com/another-bucket/x.png",
        "https://evil-figma-alpha-api.s3.us-west-2.amazonaws.com/images/1",
        "https://figma.com.evil.example/x.png",
        "https://user:pw@s3-alpha.figma.com/img/abc",
        "http://127.0.0.1:9464/api/session-metrics/persistence",
        "http://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd",
        "https://[::1/x",
        "https://s3-alpha.figma.com:99999/x",
        "",
    ],
)
def test_anything_else(url: str) -> None:
    assert not image_url_allowed(url, API)


def test_the_configured_apis_own_origin() -> None:
    double = "http://127.0.0.1:8081"
    assert image_url_allowed("http://127.0.0.1:8081/_images/K/1-2.png", double)
    assert not image_url_allowed("http://127.0.0.1:9464/_images/K/1-2.png", double)
    assert not image_url_allowed("https://127.0.0.1:8081/_images/K/1-2.png", double)
