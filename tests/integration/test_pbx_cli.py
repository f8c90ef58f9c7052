"""`centrala pbx` as operators run it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import PBX


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "centrala.cli", "pbx", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )


def test_status_reports_the_running_asterisk(pbx: PBX) -> None:
    proc = _run("status")
    assert proc.returncode == 0
    status = json.loads(proc.stdout)
    assert status["running"] and status["ari"] and status["version"].startswith("22.")


def test_status_of_a_pbx_that_is_not_running_exits_1(tmp_path: Path) -> None:
    proc = _run("status", CENTRALA_PBX_ROOT=str(tmp_path))
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["running"] is False


def test_up_names_the_port_another_process_holds(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        proc = _run(
            "up",
            CENTRALA_PBX_ROOT=str(tmp_path),
            CENTRALA_ARI_URL=f"http://127.0.0.1:{port}/ari",
        )
    assert proc.returncode == 1
    assert f"ARI HTTP 127.0.0.1:{port}" in proc.stderr
    assert "taken by another process" in proc.stderr
    assert not (tmp_path / "rootfs").exists()  # refused before building anything


def test_cli_exits_1_when_asterisk_refuses_the_command(pbx: PBX) -> None:
    # Asterisk's own `-rx` exits 0 for all of these: `pbx cli` tells them apart.
    unknown = _run("cli", "no such thing here")
    assert unknown.returncode == 1
    assert "No such command 'no such thing here'" in unknown.stderr
    failed = _run("cli", "module load no_such_module.so")
    assert failed.returncode == 1
    assert "Command 'module load no_such_module.so' failed." in failed.stderr
    usage = _run("cli", "channel originate")
    assert usage.returncode == 1
    assert "wrong arguments for 'channel originate'" in usage.stderr
    assert "Usage1: channel originate" in usage.stderr


def test_cli_prints_what_asterisk_answers_and_exits_0(pbx: PBX) -> None:
    version = _run("cli", "core show version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("Asterisk 22.")
    helped = _run("cli", "core show help channel originate")
    assert helped.returncode == 0 and "Usage1: channel originate" in helped.stdout
