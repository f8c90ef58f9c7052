"""The browser softphone in the agent's desk, as pure decisions: the PJSIP objects of an agent's
web endpoint (WebRTC over Asterisk's WebSocket transport, DTLS-SRTP, ICE), the credentials the
desk hands to the logged-in browser, and which of the agent's phones an offer rings.

One web endpoint per agent, ``<agent>-web``, beside the desk phone (``<agent>``, core/sip.py).
Its password is made for one desk session and shown to that browser only; Asterisk gets SIP's
digest of it (HA1), nobody stores the password. A new desk session's credential replaces the
last one, so one browser at a time is the agent's softphone.

Imports: core only.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.sip import ENDPOINT_NAME, SorceryObject, check_hostport, digest_auth, phone_dial

WEB_SUFFIX = "-web"
# What Chromium and Firefox speak that the shipped modules.conf loads (codec_opus_open_source,
# codec_ulaw, codec_alaw): opus first, G.711 when a bridge would otherwise transcode.
WEB_CODECS = ("opus", "ulaw", "alaw")
# Short registrations: a browser closed without un-registering stops being rung within a
# minute or two (qualify finds it gone sooner).
REGISTER_EXPIRES = 120


def web_endpoint(agent_id: str) -> str:
    return f"{agent_id}{WEB_SUFFIX}"


def check_web_endpoint(agent_id: str) -> str | None:
    """Why the agent cannot have a browser softphone (None: they can)."""
    name = web_endpoint(agent_id)
    if not ENDPOINT_NAME.match(name):
        return f"agent id {agent_id!r} cannot be a SIP user name (A-Z a-z 0-9 _ . -, 60 at most)"
    return None


def web_phone_objects(endpoint: str, digest: str, realm: str) -> list[SorceryObject]:
    """The web endpoint: auth and aor first (the endpoint names them). ``webrtc = yes`` is
    Asterisk's bundle of DTLS-SRTP (a certificate it makes itself, fingerprint checked), ICE,
    AVPF, rtcp-mux and media over the transport the REGISTER came on."""
    return [
        digest_auth(endpoint, digest, realm),
        SorceryObject(
            "aor",
            endpoint,
            (
                ("max_contacts", "1"),
                ("remove_existing", "yes"),
                ("qualify_frequency", "20"),
                ("default_expiration", str(REGISTER_EXPIRES)),
                ("maximum_expiration", str(REGISTER_EXPIRES)),
                ("minimum_expiration", "30"),
            ),
        ),
        SorceryObject(
            "endpoint",
            endpoint,
            (
                ("context", "from-agents"),
                ("disallow", "all"),
                ("allow", ",".join(WEB_CODECS)),
                ("auth", endpoint),
                ("aors", endpoint),
                ("webrtc", "yes"),
                ("direct_media", "no"),
                ("dtmf_mode", "rfc4733"),
                ("callerid", f"<{endpoint}>"),
            ),
        ),
    ]


@dataclass(frozen=True)
class WebCredentials:
    """What the desk hands the agent's browser (JsSIP's configuration)."""

    username: str
    password: str
    realm: str
    ws_url: str
    uri: str
    register_expires: int = REGISTER_EXPIRES

    def as_dict(self) -> dict[str, object]:
        return {
            "username": self.username,
            "password": self.password,
            "realm": self.realm,
            "ws_url": self.ws_url,
            "uri": self.uri,
            "register_expires": self.register_expires,
        }


def web_credentials(agent_id: str, password: str, realm: str, ws_url: str) -> WebCredentials:
    endpoint = web_endpoint(agent_id)
    # The SIP domain only names the account: Asterisk finds the endpoint by the user part.
    return WebCredentials(endpoint, password, realm, ws_url, f"sip:{endpoint}@{realm}")


def offer_dial(agent_id: str, web_registered: bool) -> str | None:
    """The dial string an agent logging in at the desk is rung on: their browser softphone
    while it is registered (the agent chose it by opening the desk with it on), else None,
    meaning the phone on file (the desk phone ``PJSIP/<agent>``, or any dial string an
    operator set). Both are never rung together: the browser answering while the desk phone
    still rings would be a second agent leg for one call."""
    return phone_dial(web_endpoint(agent_id)) if web_registered else None


def default_ws_url(http_host: str, http_port: int) -> str:
    """Asterisk's WebSocket transport is served by its HTTP server (the one ARI is on), at
    /ws. Plain ws is fine on loopback only (a browser takes localhost as a secure context);
    anything else is wss (CENTRALA_SOFTPHONE_WS_URL)."""
    host = f"[{http_host}]" if ":" in http_host else http_host
    return f"ws://{host}:{http_port}/ws"


# ---- wss for deployments: TLS on Asterisk's HTTP server -------------------------------------

TLS_CERT_FILE = "softphone-tls.crt"
TLS_KEY_FILE = "softphone-tls.key"


def check_softphone_tls(
    bind: str | None, cert: str | None, key: str | None, ws_url: str | None
) -> list[str]:
    """Every problem of the wss settings taken together, one line each (empty: fine)."""
    if bind is None and cert is None and key is None:
        return []
    problems = []
    if bind is None or cert is None or key is None:
        problems.append(
            "CENTRALA_SOFTPHONE_TLS_BIND, _TLS_CERT and _TLS_KEY go together (wss for browsers)"
        )
    if bind is not None:
        try:
            _host, port = check_hostport(bind)
            if port is None:
                raise ValueError(f"{bind!r}: the port is needed")
        except ValueError as exc:
            problems.append(f"CENTRALA_SOFTPHONE_TLS_BIND: {exc} (e.g. 0.0.0.0:8089)")
    if ws_url is None or not ws_url.startswith("wss://"):
        problems.append(
            "CENTRALA_SOFTPHONE_WS_URL: with TLS, the wss:// address browsers reach, named as in "
            "the certificate (e.g. wss://pbx.example.com:8089/ws)"
        )
    return problems


def render_http_tls(bind: str, config_dir: str) -> str:
    """http.conf's TLS lines: Asterisk serves /ws (and ARI, whose password then must be a real
    one) over HTTPS at ``bind`` with the operator's certificate, copied beside the config."""
    return (
        f"tlsenable = yes\ntlsbindaddr = {bind}\n"
        f"tlscertfile = {config_dir}/{TLS_CERT_FILE}\ntlsprivatekey = {config_dir}/{TLS_KEY_FILE}\n"
    )
