"""Refusing the shipped ARI/AMI credentials beyond loopback, and data files readable by their
owner only."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from centrala.pbx import LocalPBX, PBXError
from centrala.settings import Settings, is_loopback
from models.db import private_sqlite_file


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "localhost", "::1", "[::1]"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "pbx.example.org", ""])
def test_other_hosts_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


def test_shipped_settings_expose_nothing() -> None:
    assert Settings().exposed_default_secrets() == []


def test_default_ari_password_on_every_interface_is_named() -> None:
    settings = Settings(ari_url="http://0.0.0.0:8088/ari")
    assert settings.exposed_default_secrets() == [
        "CENTRALA_ARI_PASSWORD is the shipped default and ARI is on 0.0.0.0 "
        "(CENTRALA_ARI_URL), not loopback: set CENTRALA_ARI_PASSWORD to a secret of your own, "
        "or use 127.0.0.1"
    ]


def test_default_ami_secret_on_a_lan_address_is_named() -> None:
    problems = Settings(ami_host="192.168.1.10").exposed_default_secrets()
    assert len(problems) == 1
    assert problems[0].startswith("CENTRALA_AMI_SECRET is the shipped default and AMI is on")


def test_own_secrets_may_listen_anywhere() -> None:
    settings = Settings(
        ari_url="http://0.0.0.0:8088/ari",
        ari_password="a-secret-of-ours",
        ami_host="0.0.0.0",
        ami_secret="another-secret",
    )
    assert settings.exposed_default_secrets() == []


def test_pbx_up_refuses_before_doing_anything(tmp_path: Path) -> None:
    pbx = LocalPBX(Settings(ari_url="http://0.0.0.0:8088/ari", pbx_root=tmp_path / "pbx"))
    with pytest.raises(PBXError, match="refusing to start Asterisk: CENTRALA_ARI_PASSWORD"):
        pbx.up(lambda _message: None)
    assert not (tmp_path / "pbx").exists()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_sqlite_file_and_its_new_directory_are_private(tmp_path: Path) -> None:
    db = tmp_path / "data" / "centrala.db"
    private_sqlite_file(str(db))
    assert (mode(db.parent), mode(db)) == (0o700, 0o600)


def test_world_readable_sqlite_file_is_tightened(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    db = tmp_path / "centrala.db"
    db.write_bytes(b"")
    db.chmod(0o644)
    private_sqlite_file(str(db))
    assert mode(db) == 0o600
    assert mode(tmp_path) == 0o755  # a directory we did not create is left as it was


def test_generated_secrets_and_data_dir_are_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var")
    settings.effective_api_token()
    settings.effective_web_secret()
    assert mode(tmp_path / "var") == 0o700
    assert mode(tmp_path / "var" / "api-token") == 0o600
    assert mode(tmp_path / "var" / "web-secret") == 0o600
