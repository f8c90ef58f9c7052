"""Trunks, numbers, SIP addresses and agents' phones as settings, checked and rendered
(core/sip.py, centrala/settings.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from centrala.settings import Settings, settings_problems
from core.sip import (
    SipNetwork,
    Trunk,
    check_phone_name,
    check_sip,
    phone_digest,
    phone_objects,
    render_numbers,
    render_transports,
    render_trunks,
)
from core.sip_nodes import agent_ring, render_node_dialplan, render_node_trunks

IP_TRUNK: dict[str, Any] = {
    "name": "carrier",
    "server": "198.51.100.7",
    "addresses": ["198.51.100.7", "198.51.100.64/28"],
    "numbers": {"0800100200": "infoline", "+38733555000": "infoline"},
    "caller_id": "+38733555000",
}
REG_TRUNK: dict[str, Any] = {
    "name": "voip-ba",
    "server": "sip.voip.example:5080",
    "username": "centrala77",
    "password": "pw-from-the-carrier",
    "registration": True,
    "codecs": ["alaw"],
}


def _problems(trunks: list[dict[str, Any]], **kw: Any) -> list[str]:
    network = kw.pop("network", SipNetwork())
    return check_sip(
        network,
        [Trunk(**t) for t in trunks],
        outbound_trunk=kw.pop("outbound_trunk", None),
        infoline_number="0800100200",
    )


def test_defaults_keep_sip_on_loopback_with_no_trunk() -> None:
    s = Settings()
    assert s.trunks == []
    assert render_transports(s.sip_network) == (
        "[transport-udp]\ntype = transport\nprotocol = udp\nbind = 127.0.0.1:5060\n"
        # Browser softphones' SIP over WebSocket, through Asterisk's HTTP server.
        "\n[transport-ws]\ntype = transport\nprotocol = ws\nbind = 0.0.0.0\n"
        "\n[transport-wss]\ntype = transport\nprotocol = wss\nbind = 0.0.0.0\n"
    )
    assert render_trunks(s.trunks) == ""
    assert s.numbers == {"0800100200": "infoline"}
    assert s.effective_outbound_dial == "PJSIP/{number}@trunk"
    assert s.effective_outbound_caller_id == "0800100200"


def test_an_ip_authenticated_trunk_is_recognised_by_address_and_dialled_at_its_server() -> None:
    text = render_trunks([Trunk(**IP_TRUNK)])
    assert "[carrier](trunk-endpoint)\naors = carrier\ndisallow = all\nallow = alaw,ulaw\n" in text
    assert "[carrier](trunk-aor)\ncontact = sip:198.51.100.7\n" in text
    assert "match = 198.51.100.7,198.51.100.64/28" in text
    assert "registration" not in text and "auth" not in text.replace("trunk-endpoint", "")


def test_a_registration_trunk_registers_and_authenticates_its_calls() -> None:
    text = render_trunks([Trunk(**REG_TRUNK)])
    assert "outbound_auth = voip-ba-auth" in text
    assert (
        "[voip-ba-auth](trunk-auth)\nusername = centrala77\npassword = pw-from-the-carrier" in text
    )
    reg = text.split("[voip-ba-reg]")[1]
    assert "server_uri = sip:sip.voip.example:5080" in reg
    assert "client_uri = sip:centrala77@sip.voip.example" in reg
    # Calls the carrier sends to our registration are this trunk's (no address to match).
    assert "line = yes\nendpoint = voip-ba" in reg
    assert "identify" not in text


def test_numbers_go_to_their_entry_point_and_the_info_number_always_to_the_info_line() -> None:
    s = Settings(trunks=[IP_TRUNK])
    assert s.numbers == {"+38733555000": "infoline", "0800100200": "infoline"}
    assert s.infoline_numbers == ["+38733555000", "0800100200"]
    assert render_numbers(s.numbers) == (
        "exten => +38733555000,1,Goto(centrala-infoline,${EXTEN},1)\n"
        "exten => 0800100200,1,Goto(centrala-infoline,${EXTEN},1)\n"
    )


def test_the_outbound_trunk_gives_the_dial_string_and_the_presented_number() -> None:
    s = Settings(trunks=[IP_TRUNK], outbound_trunk="carrier")
    assert s.effective_outbound_dial == "PJSIP/{number}@carrier"
    assert s.effective_outbound_caller_id == "+38733555000"
    own = Settings(trunks=[IP_TRUNK], outbound_trunk="carrier", outbound_caller_id="033111222")
    assert own.effective_outbound_caller_id == "033111222"


def test_nat_puts_the_public_address_in_signalling_and_media_except_for_local_nets() -> None:
    text = render_transports(
        SipNetwork(
            bind="0.0.0.0:5060",
            external_address="203.0.113.10:5062",
            local_nets=("10.0.0.0/8", "192.168.0.0/16"),
        )
    )
    assert "external_signaling_address = 203.0.113.10\nexternal_signaling_port = 5062\n" in text
    assert "external_media_address = 203.0.113.10\n" in text
    assert "local_net = 10.0.0.0/8\nlocal_net = 192.168.0.0/16\n" in text


@pytest.mark.parametrize(
    ("trunks", "kw", "expected"),
    [
        ([{**IP_TRUNK, "addresses": []}], {}, "calls from it cannot be recognised"),
        (
            [{**REG_TRUNK, "password": None}],
            {},
            "registration = true needs server, username and password",
        ),
        ([{**IP_TRUNK, "username": "x"}], {}, "username and password go together"),
        ([IP_TRUNK, IP_TRUNK], {}, "trunk 'carrier' is defined twice"),
        (
            [IP_TRUNK],
            {"outbound_trunk": "other"},
            "CENTRALA_OUTBOUND_TRUNK: no trunk named 'other'",
        ),
        ([{**IP_TRUNK, "server": None}], {"outbound_trunk": "carrier"}, "has no server"),
        ([], {"network": SipNetwork(bind="0.0.0.0")}, "the port is needed"),
        ([], {"network": SipNetwork(bind="sip.example:5060")}, "CENTRALA_SIP_BIND"),
        (
            [],
            {"network": SipNetwork(external_address="203.0.113.1")},
            "needs CENTRALA_SIP_LOCAL_NETS",
        ),
        ([], {"network": SipNetwork(rtp_start=20000, rtp_end=10000)}, "CENTRALA_RTP_START"),
    ],
)
def test_settings_that_cannot_work_are_refused_saying_why(
    trunks: list[dict[str, Any]], kw: dict[str, Any], expected: str
) -> None:
    problems = _problems(trunks, **kw)
    assert any(expected in p for p in problems), problems


def test_the_shipped_example_and_defaults_have_no_problem() -> None:
    assert _problems([]) == []
    assert _problems([IP_TRUNK, REG_TRUNK], outbound_trunk="voip-ba") == []


def test_two_trunks_may_not_send_one_number_to_two_places() -> None:
    # Only one entry point exists today, so the clash is with the info number's own.
    other = {**REG_TRUNK, "numbers": {"0800100200": "infoline"}}
    assert _problems([IP_TRUNK, other]) == []


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("numbers", {"0800-100": "infoline"}, "String should match pattern"),
        ("numbers", {"0800100200": "sales"}, "entry points are infoline"),
        ("codecs", ["opus"], "codec 'opus'"),
        ("addresses", ["carrier.example"], "is not an IP address or network"),
        ("password", "semi;colon", "password: non-empty"),
        ("server", "sip.example:99999", "the port must be 1-65535"),
        ("name", "Carrier One", "String should match pattern"),
        ("surprise", 1, "Extra inputs are not permitted"),
    ],
)
def test_a_trunk_field_that_cannot_work_is_refused(field: str, value: Any, expected: str) -> None:
    with pytest.raises(ValidationError, match=expected):
        Trunk(**{**IP_TRUNK, field: value})


def test_settings_errors_name_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CENTRALA_TRUNKS", json.dumps([{**IP_TRUNK, "codecs": ["opus"]}]))
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert "CENTRALA_TRUNKS.0.CODECS: codec 'opus'" in settings_problems(caught.value)
    monkeypatch.setenv("CENTRALA_TRUNKS", json.dumps([IP_TRUNK]))
    monkeypatch.setenv("CENTRALA_OUTBOUND_TRUNK", "nope")
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert "  CENTRALA_OUTBOUND_TRUNK: no trunk named 'nope'" in settings_problems(caught.value)


def test_trunks_come_from_the_config_file_and_the_secret_never_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "centrala.toml"
    config.write_text(
        'outbound_trunk = "voip-ba"\n[[trunks]]\nname = "voip-ba"\n'
        'server = "sip.voip.example:5080"\n'
        'username = "centrala77"\npassword = "pw-from-the-carrier"\nregistration = true\n'
        'numbers = { "+38733555000" = "infoline" }\n'
    )
    monkeypatch.setenv("CENTRALA_CONFIG", str(config))
    s = Settings()
    assert s.trunks[0].registration is True
    assert s.numbers["+38733555000"] == "infoline"
    assert "pw-from-the-carrier" not in repr(s)


def test_phone_digest_is_sips_ha1_as_asterisk_documents_it() -> None:
    # The example of Asterisk's own documentation (pjsip.conf, password_digest).
    assert phone_digest("myname", "myrealm", "mypassword") == "md5:dce9ccd0a69e3ef90d8b9bf725053e78"


def test_an_agents_phone_is_auth_aor_and_endpoint_named_after_the_agent() -> None:
    auth, aor, endpoint = phone_objects("101", "md5:abc", "centrala", ["g722", "alaw"])
    assert (auth.type, aor.type, endpoint.type) == ("auth", "aor", "endpoint")
    assert {auth.id, aor.id, endpoint.id} == {"101"}
    assert dict(auth.fields) == {
        "auth_type": "digest",
        "username": "101",
        "realm": "centrala",
        "password_digest": "md5:abc",
    }
    fields = dict(endpoint.fields)
    assert fields["auth"] == fields["aors"] == "101"
    assert fields["context"] == "from-agents"
    assert fields["allow"] == "g722,alaw"
    assert dict(aor.fields)["max_contacts"] == "1"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("101", None),
        ("anna.k-7", None),
        ("carrier", "is the name of a trunk"),
        ("a b", "cannot be a SIP user name"),
        ("x@y", "cannot be a SIP user name"),
        ("-lead", "cannot be a SIP user name"),
        ("node-pbx2", "the other nodes' trunks"),
    ],
)
def test_phone_names_are_sip_user_names_and_never_a_trunks(name: str, expected: str | None) -> None:
    problem = check_phone_name(name, [Trunk(**IP_TRUNK)])
    assert (problem is None) if expected is None else (problem is not None and expected in problem)


TLS_NETWORK = SipNetwork(tls_bind="0.0.0.0:5061", tls_cert=True, tls_key=True, tls_ca=True)
TLS_TRUNK: dict[str, Any] = {
    **IP_TRUNK,
    "server": "198.51.100.7:5061",
    "transport": "tls",
    "media_encryption": "sdes",
}


def test_a_tls_listener_is_rendered_beside_udp_with_the_copied_files_and_verification() -> None:
    text = render_transports(TLS_NETWORK)
    udp, rest = text.split("[transport-tls]\n")
    tls = rest.split("\n\n")[0]  # the browsers' WebSocket transports come after it
    assert udp.startswith("[transport-udp]\n") and "protocol = udp" in udp
    assert tls.splitlines() == [
        "type = transport",
        "protocol = tls",
        "bind = 0.0.0.0:5061",
        "cert_file = /etc/asterisk/centrala/tls-cert.pem",
        "priv_key_file = /etc/asterisk/centrala/tls-key.pem",
        "ca_list_file = /etc/asterisk/centrala/tls-ca.pem",
        "verify_server = yes",
        "verify_client = no",
    ]
    # Without a CA the carrier's certificate cannot be checked: Asterisk is told so.
    unverified = render_transports(SipNetwork(tls_bind="0.0.0.0:5061", tls_cert=True, tls_key=True))
    assert "verify_server = no" in unverified and "ca_list_file" not in unverified
    assert "[transport-tls]" not in render_transports(SipNetwork())


def test_nat_applies_to_the_tls_listener_too_keeping_its_own_port() -> None:
    network = SipNetwork(
        bind="0.0.0.0:5060",
        external_address="203.0.113.10:5062",
        local_nets=("10.0.0.0/8",),
        tls_bind="0.0.0.0:5061",
        tls_cert=True,
        tls_key=True,
    )
    tls = render_transports(network).split("[transport-tls]\n")[1]
    assert "external_signaling_address = 203.0.113.10\n" in tls
    assert "external_media_address = 203.0.113.10\n" in tls
    assert "local_net = 10.0.0.0/8\n" in tls
    assert "external_signaling_port" not in tls  # 5062 is the UDP port's mapping


def test_a_tls_trunk_with_srtp_goes_over_the_tls_transport_and_never_in_clear() -> None:
    text = render_trunks([Trunk(**TLS_TRUNK)])
    endpoint = text.split("\n\n")[0].splitlines()
    assert "transport = transport-tls" in endpoint
    assert "media_encryption = sdes" in endpoint
    assert "media_encryption_optimistic = no" in endpoint
    assert "contact = sip:198.51.100.7:5061;transport=tls\n" in text
    registered = render_trunks(
        [Trunk(**{**REG_TRUNK, "server": "sip.voip.example:5061", "transport": "tls"})]
    )
    reg = registered.split("[voip-ba-reg]\n")[1]
    assert "server_uri = sip:sip.voip.example:5061;transport=tls\n" in reg
    assert "client_uri = sip:centrala77@sip.voip.example;transport=tls\n" in reg
    assert "transport = transport-tls\n" in reg
    plain = render_trunks([Trunk(**IP_TRUNK)])
    assert "transport" not in plain and "media_encryption" not in plain


@pytest.mark.parametrize(
    ("trunks", "network", "expected"),
    [
        ([TLS_TRUNK], SipNetwork(), "transport = tls needs CENTRALA_SIP_TLS_BIND"),
        (
            [{**IP_TRUNK, "media_encryption": "sdes"}],
            TLS_NETWORK,
            "media_encryption = sdes needs transport = tls",
        ),
        (
            [],
            SipNetwork(tls_bind="0.0.0.0:5061", tls_cert=True),
            "CENTRALA_SIP_TLS_BIND needs CENTRALA_SIP_TLS_CERT_FILE and CENTRALA_SIP_TLS_KEY_FILE",
        ),
        ([], SipNetwork(tls_bind="0.0.0.0", tls_cert=True, tls_key=True), "CENTRALA_SIP_TLS_BIND"),
        ([], SipNetwork(tls_cert=True, tls_key=True), "no CENTRALA_SIP_TLS_BIND"),
    ],
)
def test_tls_settings_that_cannot_work_are_refused(
    trunks: list[dict[str, Any]], network: SipNetwork, expected: str
) -> None:
    problems = _problems(trunks, network=network)
    assert any(expected in p for p in problems), problems
    assert _problems([TLS_TRUNK], network=TLS_NETWORK) == []


def test_tls_files_are_settings_and_missing_ones_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="CENTRALA_SIP_TLS_BIND needs"):
        Settings(sip_tls_bind="0.0.0.0:5061")
    with pytest.raises(ValidationError, match="transport"):
        Settings(trunks=[{**TLS_TRUNK, "transport": "tcp"}])
    s = Settings(
        sip_tls_bind="0.0.0.0:5061",
        sip_tls_cert_file=tmp_path / "cert.pem",
        sip_tls_key_file=tmp_path / "key.pem",
        trunks=[TLS_TRUNK],
    )
    assert s.sip_network.tls_bind == "0.0.0.0:5061" and not s.sip_network.tls_ca


def test_phones_in_srtp_only_when_asked_and_only_with_a_tls_listener() -> None:
    digest = phone_digest("101", "centrala", "pw")
    plain = dict(phone_objects("101", digest, "centrala", ["alaw"])[2].fields)
    assert "media_encryption" not in plain
    secure = dict(phone_objects("101", digest, "centrala", ["alaw"], "sdes")[2].fields)
    assert secure["media_encryption"] == "sdes"
    assert secure["media_encryption_optimistic"] == "no"
    problems = check_sip(
        SipNetwork(), [], outbound_trunk=None, infoline_number="0800", phone_media_encryption="sdes"
    )
    assert any(
        "CENTRALA_PHONE_MEDIA_ENCRYPTION = sdes needs CENTRALA_SIP_TLS_BIND" in p for p in problems
    )
    ok = check_sip(
        TLS_NETWORK, [], outbound_trunk=None, infoline_number="0800", phone_media_encryption="sdes"
    )
    assert ok == []


NODES = {"pbx1": "127.0.0.11:5060", "pbx2": "127.0.0.12:5060", "pbx3": "10.0.0.3:5070"}


def test_each_node_has_a_trunk_to_every_other_node_and_none_to_itself() -> None:
    text = render_node_trunks(NODES, "pbx1")
    assert "[node-pbx2](node-endpoint)\naors = node-pbx2\n" in text
    assert "[node-pbx3](trunk-aor)\ncontact = sip:10.0.0.3:5070\n" in text
    assert "[node-pbx3](trunk-identify)\nendpoint = node-pbx3\nmatch = 10.0.0.3\n" in text
    assert "node-pbx1" not in text
    # One node (or none listed): no trunk at all.
    assert "[" not in render_node_trunks({}, None)
    assert "[" not in render_node_trunks({"pbx1": "127.0.0.11"}, "pbx1")


def test_an_agents_phone_is_rung_here_or_on_every_other_node_and_never_onward() -> None:
    text = render_node_dialplan(NODES, "pbx2")
    ring, from_nodes = text.split("[from-nodes]")
    assert ring.startswith("[agent-phone]\n")
    # Here first (its registered contacts), else both other nodes at once.
    assert ring.index("PJSIP_DIAL_CONTACTS") < ring.index("n(away)")
    assert " same => n(away),Dial(PJSIP/${EXTEN}@node-pbx1&PJSIP/${EXTEN}@node-pbx3)\n" in ring
    # Another node's call rings only a phone registered here: no Dial through a node trunk.
    assert "@node-" not in from_nodes and "Dial(${HERE})" in from_nodes
    # Only a phone name builds a Dial() string; anything else is refused (cause 1).
    for context in (ring, from_nodes):
        assert '${REGEX("^[A-Za-z0-9][A-Za-z0-9_.-]*$" ${EXTEN})}' in context
        assert " same => n(refuse),Hangup(1)\n" in context
    alone = render_node_dialplan({}, None)
    assert "@node-" not in alone and " same => n(away),Hangup(1)\n" in alone


@pytest.mark.parametrize(
    ("endpoint", "anywhere", "expected"),
    [
        ("PJSIP/anna.k-7", True, "Local/anna.k-7@agent-phone/n"),
        ("PJSIP/anna.k-7", False, "PJSIP/anna.k-7"),
        # Not a desk phone on file: dialled as it is.
        ("PJSIP/+38761123456@carrier", True, "PJSIP/+38761123456@carrier"),
        ("Local/101@agents", True, "Local/101@agents"),
    ],
)
def test_an_agents_desk_phone_is_rung_through_the_cluster_only_when_there_is_one(
    endpoint: str, anywhere: bool, expected: str
) -> None:
    assert agent_ring(endpoint, anywhere=anywhere) == expected


def test_the_nodes_name_this_node_with_addresses_and_no_trunk_takes_their_names() -> None:
    assert Settings(nodes=NODES, node="pbx1").phones_anywhere
    assert not Settings().phones_anywhere
    trunk = [{**IP_TRUNK, "name": "node-x"}]
    for settings, expected in (
        ({"nodes": NODES, "node": "pbx9"}, r"this node \(pbx9\) is not one"),
        ({"nodes": NODES}, r"this node \(None\) is not one"),
        ({"nodes": {"pbx1": "a b:5060"}, "node": "pbx1"}, r"CENTRALA_NODES\[pbx1\]"),
        ({"nodes": {**NODES, "-x": "127.0.0.1"}, "node": "pbx1"}, "is not a node name"),
        ({"nodes": NODES, "node": "pbx1", "trunks": trunk}, "'node-' are the nodes' trunks"),
    ):
        with pytest.raises(ValidationError, match=expected):
            Settings(**settings)  # type: ignore[arg-type]
