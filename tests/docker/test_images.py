"""The deployment's images, built and run on a real Docker engine (scripts/test-docker): README's
`docker build` commands as written; the Centrala image renders byte for byte what the
repository renders; the Asterisk image carries Centrala's prompts, Asterisk's core sounds and
the music on hold where musiconhold.conf looks; compose's pbx-config renders into the volume,
its Asterisk starts on it with the trunk, and the Centrala image's `serve` connects to it.

This engine reaches no Docker Hub: `debian:sid-slim` is made by scripts/test-docker with
debootstrap (what Docker's own image is), builds and containers use the host's network (the
engine has no bridge here), and compose's postgres service (postgres:15) is not started:
`serve` runs on SQLite beside the compose Asterisk instead."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from centrala.pbx import NO_EID_NOTICE
from centrala.prompts import MOH_FILE, SOUNDS_DIR, hold_music
from centrala.settings import REPO_ROOT, Settings
from tests.docker.conftest import Docker, readme_docker_commands, tmp_config

SECRETS = {
    "CENTRALA_ARI_PASSWORD": "ari-secret-for-the-test",
    "CENTRALA_AMI_SECRET": "ami-secret-for-the-test",
    "CENTRALA_AGI_SECRET": "agi-secret-for-the-test",
    "POSTGRES_PASSWORD": "pg-secret-for-the-test",
}
PROJECT = "centrala-docker-test"


def _host_centrala(*args: str, env: dict[str, str]) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "centrala.cli", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def images(docker: Docker) -> list[list[str]]:
    """Both images, built by README's commands as written (plus `--network host`: this
    engine has no bridge network for the build's RUN steps)."""
    commands = readme_docker_commands()
    builds = [c for c in commands if c[:2] == ["docker", "build"]]
    assert [c[c.index("-t") + 1] for c in builds] == ["centrala", "centrala-asterisk"], commands
    for build in builds:
        docker.run(*build[:2], "--network", "host", *build[2:], timeout=1800)
    return commands


def test_the_centrala_image_renders_what_the_repository_renders(
    docker: Docker, images: list[list[str]], tmp_path: Path
) -> None:
    config = tmp_config(tmp_path)
    out = tmp_path / "image"
    out.mkdir()
    env_args = [a for k, v in SECRETS.items() for a in ("-e", f"{k}={v}")]
    docker.run(
        "docker", "run", "--rm", "--network", "none", *env_args,
        "-e", "CENTRALA_CONFIG=/etc/centrala/centrala.toml",
        "-v", f"{config}:/etc/centrala/centrala.toml:ro", "-v", f"{out}:/out",
        "centrala", "centrala", "pbx", "render", "/out",
    )  # fmt: skip
    host_env = {**docker.env, **SECRETS, "CENTRALA_CONFIG": str(config)}
    host_env["CENTRALA_DATA_DIR"] = str(tmp_path / "data")
    ours = tmp_path / "host"
    _host_centrala("pbx", "render", str(ours), env=host_env)
    got = {p.name: p.read_bytes() for p in out.iterdir()}
    assert got == {p.name: p.read_bytes() for p in ours.iterdir()}
    assert b"[carrier](trunk-endpoint)" in got["pjsip_trunks.conf"]


def test_the_asterisk_image_carries_prompts_core_sounds_and_hold_music(
    docker: Docker, images: list[list[str]], tmp_path: Path
) -> None:
    listing = docker.run(
        "docker", "run", "--rm", "--network", "none", "--entrypoint", "sh", "centrala-asterisk",
        "-c", f"cd / && find {SOUNDS_DIR} -name '*.wav' | sort && sha256sum {MOH_FILE} "
        "&& ls /usr/share/asterisk/sounds/en | grep -c . && /usr/sbin/asterisk -V",
    )  # fmt: skip
    lines = listing.splitlines()
    prompts = [line for line in lines if line.startswith(SOUNDS_DIR)]
    # The prompts `centrala pbx media` makes here from the same flow and surveys.
    made = tmp_path / "media"
    env = {**docker.env, "CENTRALA_DATA_DIR": str(tmp_path / "data")}
    _host_centrala("pbx", "media", str(made), env=env)
    expected = sorted(str(p.relative_to(made)) for p in (made / SOUNDS_DIR).rglob("*.wav"))
    assert prompts == expected and len(prompts) > 10
    assert {p.split("/")[-2] for p in prompts} >= {"bs", "en"}
    moh = tmp_path / "hold.wav"
    hold_music(moh)  # deterministic: the image's file is these very bytes
    assert f"{hashlib.sha256(moh.read_bytes()).hexdigest()}  {MOH_FILE}" in lines
    core_sounds = int(lines[-2])
    assert core_sounds > 100, lines[-2]  # asterisk-core-sounds-en: digits, beeps, "goodbye"
    assert lines[-1].startswith("Asterisk 22."), lines[-1]


@pytest.fixture
def compose(docker: Docker, images: list[list[str]], tmp_path: Path) -> Iterator[list[str]]:
    """README's `docker-compose … up -d` for pbx-config and asterisk, with this machine's
    settings beside it: the secrets file, the config file, and no host network (this host
    runs other Asterisks on the usual ports)."""
    up = next(c for c in images if c[0] == "docker-compose")
    assert up[-2:] == ["up", "-d"], up
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in SECRETS.items()))
    config = tmp_config(tmp_path)
    override = tmp_path / "test-override.yaml"
    override.write_text(
        json.dumps(
            {
                "services": {
                    name: {"network_mode": "none"}
                    | (
                        {
                            "volumes": [
                                f"{config}:/etc/centrala/centrala.toml:ro",
                                f"{tmp_path}:/etc/centrala/tls:ro",
                            ]
                        }
                        if cfg
                        else {}
                    )
                    for name, cfg in (("pbx-config", True), ("asterisk", False))
                }
            }
        )
    )
    base = [*up[:-2], "-f", str(override), "--env-file", str(tmp_path / ".env"), "-p", PROJECT]
    try:
        docker.run(*base, "up", "-d", "pbx-config", "asterisk", timeout=600)
        yield base
    finally:
        docker.run(*base, "down", "-v", "--remove-orphans", timeout=300, check=False)


def _wait(what: str, probe: object, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        last = probe()  # type: ignore[operator]
        if last:
            return str(last)
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def test_compose_starts_asterisk_on_the_rendered_config_and_serve_connects(
    docker: Docker, compose: list[str], tmp_path: Path
) -> None:
    def asterisk(command: str) -> str:
        out = docker.run(
            *compose, "exec", "-T", "asterisk", "asterisk", "-rx", command, check=False
        )
        return out.removeprefix(NO_EID_NOTICE)  # no ethernet interface: network "none"

    version = _wait("Asterisk in the container", lambda: asterisk("core show version"))
    assert version.startswith("Asterisk 22."), version
    # The trunk from the config file, rendered by pbx-config into the shared volume.
    endpoints = asterisk("pjsip show endpoints")
    assert re.search(r"Endpoint:\s+carrier\b", endpoints), endpoints
    assert "centrala-hold" in asterisk("moh show files")
    rendered = docker.run(*compose, "exec", "-T", "asterisk", "ls", "/etc/asterisk/centrala")
    assert "pjsip_trunks.conf" in rendered.split()
    # The Centrala image's serve, in the Asterisk container's network (ARI, AMI and FastAGI
    # on its loopback), on SQLite: it connects and takes the info line's Stasis app.
    cid = docker.run(*compose, "ps", "-q", "asterisk").strip()
    env_args = [a for k, v in SECRETS.items() for a in ("-e", f"{k}={v}")]
    serve = docker.run(
        "docker", "run", "-d", "--network", f"container:{cid}", *env_args,
        "-e", "CENTRALA_DATABASE_URL=sqlite+aiosqlite:////var/lib/centrala/centrala.db",
        "centrala",
    ).strip()  # fmt: skip
    try:

        def status() -> str:
            probe = (
                "import urllib.request;print(urllib.request.urlopen("
                "'http://127.0.0.1:8080/status', timeout=3).read().decode())"
            )
            return docker.run("docker", "exec", serve, "python3", "-c", probe, check=False)

        body = json.loads(_wait("serve's /status", status, timeout=90))
        assert body["ari"]["connected"] and body["ami"]["connected"], body
        assert Settings().infoline_app in body["ari"]["apps"], body
        assert body["ok"] is True, body
    finally:
        logs = docker.run("docker", "logs", serve, check=False)
        docker.run("docker", "rm", "-f", serve, check=False)
        shutil.rmtree(tmp_path / "data", ignore_errors=True)
    assert "ModuleNotFoundError" not in logs
