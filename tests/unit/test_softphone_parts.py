"""The browser softphone's pure parts (core/softphone.py) and its ARI adapter
(ari_app/softphones.py) on the fake ARI: the web endpoint's fields, the credentials, which phone
an agent is rung on, and what reaches Asterisk (a digest, never the password)."""

from __future__ import annotations

import fnmatch
import socket
import tomllib
from pathlib import Path
from typing import Any

import pytest

from ari_app.ari import ARIError, ARINotFound
from ari_app.softphones import Softphones
from ari_app.testing import FakeARI
from centrala.pbx import LocalPBX, render_generated_config
from centrala.settings import Settings
from core.errors import AgentDeskError
from core.sip import phone_digest
from core.softphone import (
    check_web_endpoint,
    default_ws_url,
    offer_dial,
    web_credentials,
    web_phone_objects,
)

REALM = "centrala"
MODULES = Path(__file__).parents[2] / "asterisk-docker/asterisk/modules.conf"


def _fields(kind: str) -> dict[str, str]:
    objects = web_phone_objects("anna-web", "md5:abc", REALM)
    return dict(next(o for o in objects if o.type == kind).fields)


def test_the_web_endpoint_is_webrtc_with_codecs_a_browser_speaks() -> None:
    objects = web_phone_objects("anna-web", "md5:abc", REALM)
    # The objects an endpoint names exist before it.
    assert [(o.type, o.id) for o in objects] == [
        ("auth", "anna-web"),
        ("aor", "anna-web"),
        ("endpoint", "anna-web"),
    ]
    endpoint = _fields("endpoint")
    assert endpoint["webrtc"] == "yes"  # DTLS-SRTP, ICE, AVPF, rtcp-mux
    assert endpoint["allow"] == "opus,ulaw,alaw"
    assert (endpoint["auth"], endpoint["aors"], endpoint["context"]) == (
        "anna-web",
        "anna-web",
        "from-agents",
    )
    assert _fields("auth") == {
        "auth_type": "digest",
        "username": "anna-web",
        "realm": REALM,
        "password_digest": "md5:abc",
    }
    aor = _fields("aor")
    assert (aor["max_contacts"], aor["remove_existing"]) == ("1", "yes")
    assert int(aor["maximum_expiration"]) <= 300


def test_the_modules_the_softphone_needs_are_loaded() -> None:
    loaded = {
        line.split("=>")[1].strip()
        for line in MODULES.read_text().splitlines()
        if line.startswith("load =>")
    }
    for module in (
        "res_http_websocket.so",
        "res_pjsip_transport_websocket.so",
        "res_srtp.so",
        "res_format_attr_opus.so",
        "codec_opus_open_source.so",
        "codec_ulaw.so",
        "codec_alaw.so",
    ):
        assert module in loaded, module


def test_a_registered_browser_is_rung_else_the_phone_on_file() -> None:
    assert offer_dial("anna", web_registered=True) == "PJSIP/anna-web"
    assert offer_dial("anna", web_registered=False) is None


def test_credentials_name_the_web_endpoint_and_the_websocket() -> None:
    c = web_credentials("anna", "pw", REALM, "wss://pbx.example.com:8089/ws")
    assert c.as_dict() == {
        "username": "anna-web",
        "password": "pw",
        "realm": REALM,
        "ws_url": "wss://pbx.example.com:8089/ws",
        "uri": "sip:anna-web@centrala",
        "register_expires": 120,
    }


@pytest.mark.parametrize(
    ("agent", "ok"),
    [("anna", True), ("101", True), ("a" * 60, True), ("a" * 61, False), ("a b", False)],
)
def test_only_agents_whose_id_makes_a_sip_user_get_a_softphone(agent: str, ok: bool) -> None:
    assert (check_web_endpoint(agent) is None) is ok


def test_the_websocket_address_defaults_to_asterisks_http_server() -> None:
    assert default_ws_url("127.0.0.1", 8088) == "ws://127.0.0.1:8088/ws"
    assert default_ws_url("::1", 8088) == "ws://[::1]:8088/ws"
    assert Settings().effective_softphone_ws_url == "ws://127.0.0.1:8088/ws"
    assert (
        Settings(ari_url="http://127.0.0.1:9088/ari").effective_softphone_ws_url
        == "ws://127.0.0.1:9088/ws"
    )
    wss = "wss://pbx.example.com:8089/ws"
    assert Settings(softphone_ws_url=wss).effective_softphone_ws_url == wss
    with pytest.raises(ValueError):
        Settings(softphone_ws_url="http://pbx.example.com/ws")


class EndpointsARI(FakeARI):
    """The fake ARI plus endpoints' states (``online``: registered)."""

    def __init__(self) -> None:
        super().__init__()
        self.online: set[str] = set()
        self.away = False

    async def request(self, method: str, path: str, **kw: Any) -> Any:
        if path.startswith("/endpoints/PJSIP/"):
            if self.away:
                raise ARIError(0, "connection refused", method, path)
            name = path.rsplit("/", 1)[1]
            if name not in {k[2] for k in self.config if k[1] == "endpoint"}:
                raise ARINotFound(404, "Endpoint not found", method, path)
            return {"resource": name, "state": "online" if name in self.online else "offline"}
        return await super().request(method, path, **kw)


async def test_issuing_pushes_a_digest_and_hands_out_the_password_once() -> None:
    fake = EndpointsARI()
    phones = Softphones(fake, realm=REALM, ws_url="ws://127.0.0.1:8088/ws")
    first = await phones.issue("anna")
    auth = fake.config[("res_pjsip", "auth", "anna-web")]
    assert auth["password_digest"] == phone_digest("anna-web", REALM, first.password)
    assert first.password not in str(fake.config)
    assert fake.config[("res_pjsip", "endpoint", "anna-web")]["webrtc"] == "yes"
    # A new desk session: new password, the old digest replaced.
    second = await phones.issue("anna")
    assert second.password != first.password
    assert fake.config[("res_pjsip", "auth", "anna-web")]["password_digest"] == phone_digest(
        "anna-web", REALM, second.password
    )


async def test_the_agent_is_rung_in_the_browser_only_while_it_is_registered() -> None:
    fake = EndpointsARI()
    phones = Softphones(fake, realm=REALM, ws_url="ws://x/ws")
    assert await phones.dial("anna") is None  # no web endpoint at all
    await phones.issue("anna")
    assert await phones.dial("anna") is None  # made, not registered
    fake.online.add("anna-web")
    assert await phones.dial("anna") == "PJSIP/anna-web"
    fake.away = True  # Asterisk away: the phone on file (the log-in says what is wrong)
    assert await phones.dial("anna") is None


async def test_log_out_removes_the_endpoint_first_and_twice_is_fine() -> None:
    fake = EndpointsARI()
    phones = Softphones(fake, realm=REALM, ws_url="ws://x/ws")
    await phones.issue("anna")
    await phones.remove("anna")
    assert not [k for k in fake.config if k[2] == "anna-web"]
    deletes = [r.path.split("/")[-2] for r in fake.requests_to("DELETE", "/asterisk/config")]
    assert deletes[0] == "endpoint"
    await phones.remove("anna")


async def test_a_pbx_that_refuses_the_endpoint_is_a_503_for_the_desk() -> None:
    fake = EndpointsARI()

    async def refuse(*args: Any, **kw: Any) -> None:
        raise ARIError(0, "connection refused", "PUT", "/asterisk/config")

    fake.put_config = refuse  # type: ignore[method-assign]
    with pytest.raises(AgentDeskError) as err:
        await Softphones(fake, realm=REALM, ws_url="ws://x/ws").issue("anna")
    assert err.value.status == 503


def _tls(tmp_path: Path, **kw: Any) -> Settings:
    (tmp_path / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\nX\n")
    (tmp_path / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\nY\n")
    values: dict[str, Any] = {
        "softphone_tls_bind": "0.0.0.0:8089",
        "softphone_tls_cert": tmp_path / "cert.pem",
        "softphone_tls_key": tmp_path / "key.pem",
        "softphone_ws_url": "wss://pbx.example.com:8089/ws",
        "ari_password": "a-real-secret",
    }
    return Settings(**(values | kw))


def test_wss_serves_the_operators_certificate_beside_the_config(tmp_path: Path) -> None:
    files = render_generated_config(_tls(tmp_path))
    assert files["http.conf"] == (
        "bindaddr = 127.0.0.1\nbindport = 8088\n"
        "tlsenable = yes\ntlsbindaddr = 0.0.0.0:8089\n"
        "tlscertfile = /etc/asterisk/centrala/softphone-tls.crt\n"
        "tlsprivatekey = /etc/asterisk/centrala/softphone-tls.key\n"
    )
    assert files["softphone-tls.crt"].startswith("-----BEGIN CERTIFICATE-----")
    assert files["softphone-tls.key"].startswith("-----BEGIN PRIVATE KEY-----")
    assert "tls" not in render_generated_config(Settings())["http.conf"]


def test_wss_settings_are_checked_together(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="go together"):
        Settings(softphone_tls_bind="0.0.0.0:8089", softphone_ws_url="wss://pbx.example/ws")
    with pytest.raises(ValueError, match="CENTRALA_SOFTPHONE_WS_URL"):
        _tls(tmp_path, softphone_ws_url=None)
    with pytest.raises(ValueError, match="CENTRALA_SOFTPHONE_TLS_BIND"):
        _tls(tmp_path, softphone_tls_bind="0.0.0.0")
    # ARI answers on the HTTPS port too: never with the shipped password beyond loopback.
    shipped = _tls(tmp_path, ari_password=Settings().ari_password)
    assert any("CENTRALA_SOFTPHONE_TLS_BIND" in p for p in shipped.exposed_default_secrets())
    assert _tls(tmp_path).exposed_default_secrets() == []


def test_the_vendored_jssip_is_installed_with_the_web_package() -> None:
    """`pip install .` (the Centrala image) takes web's files by pyproject's package-data
    patterns: the desk's scripts and the built JsSIP in static/vendor/ must all match."""
    root = MODULES.parents[2]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["web"]
    web = root / "web"
    files = [p.relative_to(web).as_posix() for p in (web / "static").rglob("*") if p.is_file()]
    assert "static/vendor/jssip.min.js" in files and "static/softphone.js" in files
    for name in files:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name
    head = (web / "static/vendor/jssip.min.js").read_text()[:200]
    assert "JsSIP 3.13.8 (MIT" in head  # the version and licence, where a reader looks


def test_a_taken_https_port_for_wss_is_named(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        settings = _tls(tmp_path, softphone_tls_bind=f"127.0.0.1:{port}")
        taken = LocalPBX(settings).ports_in_use()
    assert f"HTTPS 127.0.0.1:{port}" in taken
