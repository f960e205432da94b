"""The web configuration file: every bad field is named, misspellings get a suggestion, and an
invalid file stops start-up with exit code 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml

from exporter.app.cli import EXIT_CONFIG, main
from exporter.core.errors import ConfigError
from exporter.web.web_config import check_reload, load_web_config, parse_web_config
from tests.support.tls import make_certificates

HASH = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("certs")
    make_certificates(directory)
    return directory


def tls(**extra: Any) -> dict[str, Any]:
    return {"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key", **extra}}


BAD = [
    ({"tls_server_config": {"cert_file": "server.crt"}}, "tls_server_config.key_file", ""),
    (tls(min_version="TLS14"), "min_version", "did you mean 'TLS13'"),
    (tls(client_auth_type="RequireAndVerifyClientCert"), "client_ca_file", "is required"),
    (tls(client_auth_type="RequireAnyClientCert"), "client_auth_type", "RequireAndVerify"),
    (tls(cipher_suites=["x"]), "tls_server_config.cipher_suites", "not supported"),
    (tls(cert_fle="a"), "tls_server_config.cert_fle", "did you mean 'cert_file'"),
    ({"basic_auth_user": {}}, "basic_auth_user", "did you mean 'basic_auth_users'"),
    ({"basic_auth_users": {"a": "plain"}}, "basic_auth_users.a", "bcrypt"),
    ({"http_server_config": {"headers": {"Set-Cookie": "x"}}}, "headers.Set-Cookie", "allowed"),
    (tls(cert_file="nope.crt"), "tls_server_config.cert_file", "no such file"),
]


@pytest.mark.parametrize(("raw", "field", "hint"), BAD)
def test_bad_fields_are_named(certs: Path, raw: Any, field: str, hint: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_web_config(raw, certs)
    assert field in str(caught.value) and hint in str(caught.value)


def test_a_good_file_parses(certs: Path) -> None:
    config = parse_web_config(
        {
            **tls(client_ca_file="ca.crt", client_auth_type="VerifyClientCertIfGiven"),
            "basic_auth_users": {"prometheus": HASH},
            "http_server_config": {"headers": {"x-frame-options": "deny"}, "http2": True},
        },
        certs,
    )
    assert config.tls is not None and config.tls.cert_file == certs / "server.crt"
    assert config.users["prometheus"] == HASH.encode() and config.auth_required
    assert dict(config.headers) == {"X-Frame-Options": "deny"}
    assert not parse_web_config(None, certs).auth_required  # an empty file: nothing on


def test_an_invalid_file_exits_2_naming_the_field(
    certs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = certs / "web.yml"
    path.write_text(yaml.safe_dump(tls(min_version="SSL3")))
    assert main(["--web-config-file", str(path)]) == EXIT_CONFIG
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "tls_server_config.min_version" in err
    path.write_text("tls_server_config: [unclosed\n")
    assert main(["--web-config-file", str(path)]) == EXIT_CONFIG
    assert "not valid YAML (line 2)" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="cannot read"):
        load_web_config(str(certs / "absent.yml"))


def test_a_reload_may_not_turn_basic_auth_or_tls_off(certs: Path) -> None:
    """An in-place rewrite is empty for a moment: that moment must not open the exporter."""
    with_users = parse_web_config({"basic_auth_users": {"prometheus": HASH}}, certs)
    emptied: dict[str, Any] | None
    for emptied in (None, {"basic_auth_users": None}, {"basic_auth_users": {}}):
        with pytest.raises(ConfigError, match=r"basic_auth_users.*restart"):
            check_reload(with_users, parse_web_config(emptied, certs), serving_tls=False)
    with_tls = parse_web_config({**tls(), "basic_auth_users": {"p": HASH}}, certs)
    without_tls = parse_web_config({"basic_auth_users": {"p": HASH}}, certs)
    with pytest.raises(ConfigError, match=r"tls_server_config.*restart"):
        check_reload(with_tls, without_tls, serving_tls=True)
    # Stronger or equal is fine: users added, users changed, TLS kept.
    check_reload(parse_web_config(None, certs), with_users, serving_tls=False)
    check_reload(with_tls, with_tls, serving_tls=True)
    check_reload(without_tls, with_tls, serving_tls=False)


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_bytes(b"basic_auth_users:\n  \xff\xfe: x\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_web_config(str(path))
