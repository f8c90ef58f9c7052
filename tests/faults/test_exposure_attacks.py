"""Issue 10: `pbx up` rendered ARI on 0.0.0.0 with the shipped password and no warning, and the
SQLite file was world-readable. Through the real CLI: both commands that would expose the
shipped credentials refuse, naming the setting, before starting anything; the files a fresh
install writes are its owner's only."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def centrala(tmp: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "centrala.cli", *args],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "CENTRALA_DATA_DIR": str(tmp / "var"),
            "CENTRALA_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'var' / 'centrala.db'}",
            "CENTRALA_PBX_ROOT": str(tmp / "pbx"),  # never the real one: nothing may start
            **env,
        },
        cwd=ROOT,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("command", [["pbx", "up"], ["serve"]])
def test_default_ari_password_on_every_interface_is_refused(
    tmp_path: Path, command: list[str]
) -> None:
    proc = centrala(tmp_path, *command, CENTRALA_ARI_URL="http://0.0.0.0:8088/ari")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "CENTRALA_ARI_PASSWORD is the shipped default and ARI is on 0.0.0.0" in proc.stderr
    assert not (tmp_path / "pbx").exists() and not (tmp_path / "var").exists()


@pytest.mark.parametrize("command", [["pbx", "up"], ["serve"]])
def test_default_ami_secret_on_a_network_address_is_refused(
    tmp_path: Path, command: list[str]
) -> None:
    proc = centrala(
        tmp_path, *command, CENTRALA_AMI_HOST="10.1.2.3", CENTRALA_ARI_PASSWORD="ours-alone"
    )
    assert proc.returncode == 1, proc.stderr
    assert "CENTRALA_AMI_SECRET is the shipped default and AMI is on 10.1.2.3" in proc.stderr
    assert "CENTRALA_ARI_PASSWORD" not in proc.stderr  # its own password: not a problem
    assert not (tmp_path / "pbx").exists() and not (tmp_path / "var").exists()


def test_sqlite_database_and_data_dir_of_a_fresh_install_are_private(tmp_path: Path) -> None:
    proc = centrala(tmp_path, "db", "upgrade")
    assert proc.returncode == 0, proc.stderr
    var = tmp_path / "var"
    assert stat.S_IMODE(var.stat().st_mode) == 0o700
    files = sorted(var.glob("centrala.db*"))
    assert files and files[0].name == "centrala.db"
    for path in files:  # the database and any -wal/-shm SQLite made beside it
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
