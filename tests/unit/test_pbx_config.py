"""The configuration we ship and render for Asterisk, and the runner's checks."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from centrala.pbx import LocalPBX, PBXError, render_generated_config
from centrala.settings import REPO_ROOT, Settings

ENTRYPOINT = REPO_ROOT / "asterisk-docker" / "docker-entrypoint.sh"
CONFIG = REPO_ROOT / "asterisk-docker" / "asterisk"

CUSTOM_ENV = {
    "CENTRALA_ARI_URL": "http://127.0.0.1:18088/ari",
    "CENTRALA_ARI_USER": "ops",
    "CENTRALA_ARI_PASSWORD": "s3cret-ari",
    "CENTRALA_AMI_PORT": "15038",
    "CENTRALA_AMI_USER": "opsami",
    "CENTRALA_AMI_SECRET": "s3cret-ami",
    "CENTRALA_AGI_PORT": "14573",
    "CENTRALA_INFOLINE_APP": "infoline-b",
    "CENTRALA_AGI_SECRET": "s3cret-agi-0123456789",
}


def _entrypoint_render(tmp_path: Path, env: dict[str, str]) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CENTRALA_")}
    subprocess.run(
        ["sh", str(ENTRYPOINT)],
        env={**clean, **env, "CENTRALA_RENDER_ONLY": str(tmp_path)},
        check=True,
    )
    return {p.name: p.read_text() for p in tmp_path.iterdir()}


@pytest.mark.parametrize("env", [{}, CUSTOM_ENV], ids=["defaults", "custom"])
def test_docker_entrypoint_renders_exactly_what_pbx_up_renders(
    tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in list(os.environ):
        if key.startswith("CENTRALA_"):
            monkeypatch.delenv(key)
    # The AGI secret, when unset, is generated into the data directory both read.
    env = {**env, "CENTRALA_DATA_DIR": str(tmp_path / "data")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    rendered = tmp_path / "rendered"
    rendered.mkdir()
    assert _entrypoint_render(rendered, env) == render_generated_config(Settings())


def test_agi_secret_is_generated_once_into_data_dir_and_rendered(tmp_path: Path) -> None:
    # None given here wins over a CENTRALA_AGI_SECRET in the environment (the integration
    # tests' conftest sets one for the whole process).
    settings = Settings(data_dir=tmp_path, agi_secret=None)
    first = render_generated_config(settings)["globals.conf"]
    secret = (tmp_path / "agi-secret").read_text()
    assert f"CENTRALA_AGI_SECRET = {secret}\n" in first
    assert len(secret) >= 32
    assert (tmp_path / "agi-secret").stat().st_mode & 0o777 == 0o600
    again = Settings(data_dir=tmp_path, agi_secret=None)
    assert render_generated_config(again)["globals.conf"] == first


@pytest.mark.parametrize("bad", ["short", "has space-0123456789", "semi;colon-0123456789"])
def test_an_agi_secret_that_would_break_the_dialplan_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="agi_secret"):
        Settings(agi_secret=bad)


def test_rendered_config_carries_settings() -> None:
    files = render_generated_config(
        Settings(**{k.removeprefix("CENTRALA_").lower(): v for k, v in CUSTOM_ENV.items()})
    )
    assert "CENTRALA_AGI_SECRET = s3cret-agi-0123456789" in files["globals.conf"]
    assert "bindport = 18088" in files["http.conf"]
    assert "[ops]" in files["ari_users.conf"] and "password = s3cret-ari" in files["ari_users.conf"]
    assert "permit = 127.0.0.1/255.255.255.255" in files["manager_users.conf"]
    assert "deny = 0.0.0.0/0.0.0.0" in files["manager_users.conf"]
    assert "INFOLINE_APP = infoline-b" in files["globals.conf"]
    assert "CENTRALA_AGI = agi://127.0.0.1:14573" in files["globals.conf"]


@pytest.mark.parametrize("bad", ["", "pass word", "x\ny", "a;b", "[evil]", 'q"uote', "a=b", "a,b"])
def test_credentials_that_would_break_asterisk_config_are_refused(bad: str) -> None:
    with pytest.raises(PBXError, match="CENTRALA_ARI_PASSWORD"):
        render_generated_config(Settings(ari_password=bad))


def test_entrypoint_refuses_the_same_bad_credentials(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CENTRALA_")}
    proc = subprocess.run(
        ["sh", str(ENTRYPOINT)],
        env={**clean, "CENTRALA_ARI_PASSWORD": "a;b", "CENTRALA_RENDER_ONLY": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert not list(tmp_path.iterdir())


def test_info_number_enters_our_stasis_app_from_trunk_with_agi_fallback() -> None:
    dialplan = (CONFIG / "extensions.conf").read_text()
    from_trunk = dialplan.split("[from-trunk]")[1].split("\n[")[0]
    assert "exten => 0800100200,1," in from_trunk
    assert "Stasis(${INFOLINE_APP},${CHANNEL(linkedid)})" in from_trunk
    assert "AGI(${CENTRALA_AGI}/infoline,${CENTRALA_AGI_SECRET},${CHANNEL(linkedid)})" in from_trunk


def test_every_fastagi_script_in_the_dialplan_gets_the_secret_first() -> None:
    calls = [
        line.split("AGI(", 1)[1]
        for conf in CONFIG.glob("*.conf")
        for line in conf.read_text().splitlines()
        if "AGI(" in line and not line.lstrip().startswith(";")
    ]
    assert len(calls) == 3
    for call in calls:
        assert call.startswith("${CENTRALA_AGI}/") and ",${CENTRALA_AGI_SECRET}" in call
        assert call.split(",")[1] == "${CENTRALA_AGI_SECRET}"


def test_modules_conf_loads_explicitly_what_ari_and_agi_need() -> None:
    loaded = {
        line.split("=>")[1].strip()
        for line in (CONFIG / "modules.conf").read_text().splitlines()
        if line.startswith("load")
    }
    assert "autoload = no" in (CONFIG / "modules.conf").read_text()
    # res_ari needs res_websocket_client's symbols and res_agi needs res_speech's: without
    # them Asterisk 22 starts but ARI/AGI are missing (found the hard way).
    for module in (
        "res_ari.so",
        "res_websocket_client.so",
        "res_agi.so",
        "res_speech.so",
        "app_stasis.so",
        "res_ari_channels.so",
        "chan_pjsip.so",
    ):
        assert module in loaded


def test_pbx_up_refuses_without_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(PBXError, match="needs root"):
        LocalPBX(Settings(pbx_root=tmp_path)).check_can_run()


def test_pbx_up_refuses_without_debootstrap(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr("shutil.which", lambda _name: None)
    with pytest.raises(PBXError, match="apt-get install -y debootstrap"):
        LocalPBX(Settings(pbx_root=tmp_path)).check_can_run()


def test_a_taken_port_is_named() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        pbx = LocalPBX(Settings(ari_url=f"http://127.0.0.1:{port}/ari", ami_port=1))
        taken = pbx.ports_in_use()
    assert f"ARI HTTP 127.0.0.1:{port}" in taken
