"""The configuration we ship and render for Asterisk, and the runner's checks."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from centrala.cli import main
from centrala.pbx import LocalPBX, PBXError, render_generated_config
from centrala.settings import REPO_ROOT, Settings, get_settings

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


TRUNK_TOML = """
sip_bind = "0.0.0.0:5070"
sip_external_address = "203.0.113.10"
sip_local_nets = ["10.0.0.0/8"]
rtp_start = 12000
rtp_end = 12999
outbound_trunk = "carrier"

[[trunks]]
name = "carrier"
server = "198.51.100.7:5060"
addresses = ["198.51.100.0/28"]
username = "centrala-ba"
password = "not-in-the-repo"
registration = true
caller_id = "0800100200"
numbers = { "0800100200" = "infoline", "+38733555000" = "infoline" }
"""


def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("CENTRALA_"):
            monkeypatch.delenv(key)


TLS_TOML = """
sip_tls_bind = "0.0.0.0:5061"
sip_tls_cert_file = "{tmp}/cert.pem"
sip_tls_key_file = "{tmp}/key.pem"
sip_tls_ca_file = "{tmp}/ca.pem"

[[trunks]]
name = "carrier"
server = "198.51.100.7:5061"
addresses = ["198.51.100.7"]
transport = "tls"
media_encryption = "sdes"
"""
# Stand-ins: the renderer copies them as they are (the real ones are made by tests/sip).
PEM = {
    "cert.pem": "-----BEGIN CERTIFICATE-----\nTUlJQmNlcnQ=\n-----END CERTIFICATE-----\n",
    "key.pem": "-----BEGIN PRIVATE KEY-----\nTUlJRXZrZXk=\n-----END PRIVATE KEY-----\n",
    "ca.pem": "-----BEGIN CERTIFICATE-----\nTUlJQmNh\n-----END CERTIFICATE-----\n",
}


@pytest.mark.parametrize(
    ("env", "toml"),
    [({}, None), (CUSTOM_ENV, None), ({}, TRUNK_TOML), ({}, TLS_TOML)],
    ids=["defaults", "custom", "trunks", "tls"],
)
def test_pbx_render_writes_exactly_what_pbx_up_installs(
    tmp_path: Path, env: dict[str, str], toml: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The Docker deployment's Asterisk reads what `centrala pbx render` wrote (compose.yaml:
    # pbx-config); `pbx up` installs render_generated_config: the same, for the same settings.
    _clean_env(monkeypatch)
    env = {**env, "CENTRALA_DATA_DIR": str(tmp_path / "data")}  # the AGI secret, made there
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if toml is not None:
        config = tmp_path / "centrala.toml"
        config.write_text(toml.replace("{tmp}", str(tmp_path)))
        monkeypatch.setenv("CENTRALA_CONFIG", str(config))
    for name, text in PEM.items():
        (tmp_path / name).write_text(text)
    get_settings.cache_clear()
    out = tmp_path / "rendered"
    try:
        result = CliRunner().invoke(main, ["pbx", "render", str(out)])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    written = {p.name: p.read_text() for p in out.iterdir()}
    assert written == render_generated_config(Settings())
    assert all(p.stat().st_mode & 0o077 == 0 for p in out.iterdir())
    if toml == TLS_TOML:
        assert written["tls-cert.pem"] == PEM["cert.pem"]
        assert written["tls-key.pem"] == PEM["key.pem"]
        assert written["tls-ca.pem"] == PEM["ca.pem"]
        assert "cert_file = /etc/asterisk/centrala/tls-cert.pem" in written["pjsip_transports.conf"]
        assert "media_encryption = sdes" in written["pjsip_trunks.conf"]
    else:
        assert not [name for name in written if name.endswith(".pem")]
    if toml == TRUNK_TOML:
        assert "[carrier](trunk-endpoint)" in written["pjsip_trunks.conf"]
        assert "password = not-in-the-repo" in written["pjsip_trunks.conf"]
        assert "bind = 0.0.0.0:5070" in written["pjsip_transports.conf"]
        assert "rtpstart = 12000" in written["rtp_ports.conf"]


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("missing.pem", None, "CENTRALA_SIP_TLS_KEY_FILE: cannot read"),
        ("key.txt", "not a key", "CENTRALA_SIP_TLS_KEY_FILE: .* is not a PEM file"),
    ],
)
def test_a_tls_file_that_cannot_be_used_is_refused_naming_its_setting(
    tmp_path: Path, name: str, text: str | None, expected: str
) -> None:
    for pem, content in PEM.items():
        (tmp_path / pem).write_text(content)
    if text is not None:
        (tmp_path / name).write_text(text)
    settings = Settings(
        data_dir=tmp_path / "data",
        sip_tls_bind="0.0.0.0:5061",
        sip_tls_cert_file=tmp_path / "cert.pem",
        sip_tls_key_file=tmp_path / name,
    )
    with pytest.raises(PBXError, match=expected):
        render_generated_config(settings)


def test_docker_entrypoint_wants_every_rendered_file(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CENTRALA_")}
    env = {**clean, "CENTRALA_RENDERED_CONFIG": str(tmp_path), "CENTRALA_CHECK_ONLY": "1"}
    missing = subprocess.run(
        ["sh", str(ENTRYPOINT)], env=env, capture_output=True, text=True, check=False
    )
    assert missing.returncode == 2
    assert "centrala pbx render" in missing.stderr
    for name, text in render_generated_config(Settings(data_dir=tmp_path / "d")).items():
        (tmp_path / name).write_text(text)
    ready = subprocess.run(
        ["sh", str(ENTRYPOINT)], env=env, capture_output=True, text=True, check=False
    )
    assert ready.returncode == 0, ready.stderr
    for name in render_generated_config(Settings(data_dir=tmp_path / "d")):
        (tmp_path / name).unlink()
        gone = subprocess.run(["sh", str(ENTRYPOINT)], env=env, capture_output=True, check=False)
        assert gone.returncode == 2, f"starts without {name}"
        (tmp_path / name).write_text("")


def test_compose_renders_with_centralas_settings_before_asterisk_starts() -> None:
    compose = yaml.safe_load((REPO_ROOT / "asterisk-docker" / "compose.yaml").read_text())
    services = compose["services"]
    render, asterisk, centrala = services["pbx-config"], services["asterisk"], services["centrala"]
    assert render["command"] == ["centrala", "pbx", "render", "/etc/asterisk/centrala"]
    assert "asterisk-generated:/etc/asterisk/centrala" in render["volumes"]
    assert "asterisk-generated:/etc/asterisk/centrala" in asterisk["volumes"]
    assert asterisk["depends_on"]["pbx-config"]["condition"] == "service_completed_successfully"
    # The renderer reads the very settings `serve` runs with (same file, same variables).
    assert render["build"] == centrala["build"]
    for key, value in render["environment"].items():
        assert centrala["environment"][key] == value
    config_mount = "./centrala.toml:/etc/centrala/centrala.toml:ro"
    assert config_mount in render["volumes"] and config_mount in centrala["volumes"]


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


def test_pbx_render_refuses_bad_settings_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clean_env(monkeypatch)
    monkeypatch.setenv("CENTRALA_ARI_PASSWORD", "a;b")
    monkeypatch.setenv("CENTRALA_SIP_BIND", "0.0.0.0")  # no port
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["pbx", "render", str(tmp_path / "out")])
        assert result.exit_code == 1
        assert "CENTRALA_SIP_BIND: '0.0.0.0': the port is needed" in result.output
        monkeypatch.delenv("CENTRALA_SIP_BIND")
        get_settings.cache_clear()
        result = CliRunner().invoke(main, ["pbx", "render", str(tmp_path / "out")])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert "CENTRALA_ARI_PASSWORD must be non-empty" in result.output
    assert not (tmp_path / "out").exists()


def test_info_number_enters_our_stasis_app_from_trunk_with_agi_fallback() -> None:
    dialplan = (CONFIG / "extensions.conf").read_text()
    from_trunk = dialplan.split("[from-trunk]")[1].split("\n[")[0]
    assert '#include "centrala/numbers.conf"' in from_trunk
    numbers = render_generated_config(Settings())["numbers.conf"]
    assert numbers == "exten => 0800100200,1,Goto(centrala-infoline,${EXTEN},1)\n"
    infoline = dialplan.split("[centrala-infoline]")[1].split("\n[")[0]
    assert "Stasis(${INFOLINE_APP},${CHANNEL(linkedid)},${CENTRALA_ENTRY})" in infoline
    assert "AGI(${CENTRALA_AGI}/infoline,${CENTRALA_AGI_SECRET},${CHANNEL(linkedid)})" in infoline


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
        "res_srtp.so",  # media_encryption = sdes: without it no SDP can be made (found so)
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
