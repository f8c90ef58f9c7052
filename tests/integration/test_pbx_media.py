"""What `centrala pbx up` installs besides the configuration, seen by the real Asterisk: the
default flow's synthesised prompts, our music on hold, and (test installs only) the simulated
agents' and clients' phones from tests/asterisk."""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.request
import uuid
import wave
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ari_app.ari import Event
from centrala.prompts import MOH_FILE, SOUNDS_DIR, load_flow
from centrala.settings import Settings
from core.media import prompt_media, text_tag
from tests.integration.conftest import PBX, Callers, _centrala


def _ari_get(pbx: PBX, path: str) -> Any:
    s = pbx.settings
    token = base64.b64encode(f"{s.ari_user}:{s.ari_password}".encode()).decode()
    req = urllib.request.Request(
        s.ari_url.rstrip("/") + path, headers={"Authorization": f"Basic {token}"}
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def test_default_flow_prompts_are_installed(pbx: PBX) -> None:
    flow = load_flow(pbx.settings.flow_file)
    sounds = pbx.settings.pbx_root / "rootfs/usr/share/asterisk/sounds"
    for name, prompt in flow.prompts.items():
        for lang in prompt.text:
            media = prompt_media(flow, name, lang)
            assert media == f"sound:centrala/{lang}/{name}-{text_tag(lang, prompt.text[lang])}"
            path = sounds / f"{media.removeprefix('sound:')}.wav"
            with wave.open(str(path), "rb") as w:
                assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
                assert w.getnframes() > 2400, path
            assert path.stat().st_mode & 0o444 == 0o444, path
    # ARI's sound index takes the top directory of sounds/ for a language, so Asterisk 22
    # lists sounds/centrala/bs/welcome-TAG.wav as the sound "bs/welcome-TAG" in "language"
    # centrala (a flow's prompt file is named after its text: core.media.sound_name).
    welcome = prompt_media(flow, "welcome", "bs").removeprefix("sound:centrala/")
    sound = _ari_get(pbx, "/sounds/" + quote(welcome, safe=""))
    assert {"language": "centrala", "format": "slin"} in sound["formats"], sound
    ids = {s["id"] for s in _ari_get(pbx, "/sounds?lang=centrala")}
    wanted = {
        prompt_media(flow, name, lang).removeprefix("sound:centrala/")
        for name, prompt in flow.prompts.items()
        for lang in prompt.text
    }
    assert wanted <= ids


def test_hold_music_is_in_the_default_moh_class(pbx: PBX) -> None:
    out = pbx.cli("moh show files")
    assert "Class: default" in out, out
    assert "/usr/share/asterisk/moh/centrala-hold" in out, out
    path = pbx.settings.pbx_root / "rootfs/usr/share/asterisk/moh/centrala-hold.wav"
    with wave.open(str(path), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        assert w.getnframes() / w.getframerate() >= 20


def test_simulated_phones_are_installed(pbx: PBX) -> None:
    for context, app in (
        ("test-agent", "Echo()"),
        ("test-agent-noanswer", "Ringing()"),
        ("test-agent-busy", "Busy(10)"),
        ("test-client-answer", "SendDTMF(${DIGITS})"),
        ("test-client-noanswer", "Wait(300)"),
        ("test-client-busy", "Busy(10)"),
        ("test-client-machine", "Playback(hello-world&"),
    ):
        out = pbx.cli(f"dialplan show {context}")
        assert f"Context '{context}'" in out and app in out, out
        assert "extensions_test.conf" in out, out


async def test_a_synthesised_prompt_plays_on_a_call(callers: Callers) -> None:
    """Played to a real channel: the synthesised prompt finishes "done", a missing one fails."""
    finished: dict[str, asyncio.Future[Event]] = {}

    async def on_event(event: Event) -> None:
        if event["type"] == "PlaybackFinished":
            fut = finished.get(str(event["playback"]["id"]))
            if fut is not None and not fut.done():
                fut.set_result(event)

    callers.ari.on_event(on_event)
    call = await callers.place("1001", context="test-agent")
    await call.wait_for("StasisStart")
    try:
        states = {}
        flow = load_flow(Settings().flow_file)
        goodbye = prompt_media(flow, "goodbye", "bs")  # as the flow names its file
        for media in (goodbye, "sound:centrala/bs/no_such_prompt"):
            playback_id = f"test-{uuid.uuid4().hex[:12]}"
            finished[playback_id] = asyncio.get_running_loop().create_future()
            await callers.ari.play(call.id, media, playback_id)
            event = await asyncio.wait_for(finished[playback_id], 15)
            states[media] = event["playback"]["state"]
        assert states == {goodbye: "done", "sound:centrala/bs/no_such_prompt": "failed"}
    finally:
        await call.hangup()
        await call.wait_for("StasisEnd")


def test_pbx_render_writes_byte_for_byte_what_pbx_up_installed(pbx: PBX, tmp_path: Path) -> None:
    # The Docker deployment's Asterisk reads what `centrala pbx render` wrote (compose's
    # pbx-config): for the same settings, the very files `pbx up` put in the running chroot.
    installed = pbx.settings.pbx_root / "rootfs/etc/asterisk/centrala"
    out = tmp_path / "rendered"
    _centrala("pbx", "render", str(out))
    rendered = {p.name: p.read_bytes() for p in out.iterdir()}
    assert rendered == {p.name: p.read_bytes() for p in installed.iterdir()}
    assert "pjsip_transports.conf" in rendered


def test_pbx_media_writes_byte_for_byte_what_pbx_up_installed(pbx: PBX, tmp_path: Path) -> None:
    # The Asterisk image's prompts and hold music come from `centrala pbx media` (its
    # Dockerfile): the same function and files as the local PBX's.
    out = tmp_path / "media"
    said = _centrala("pbx", "media", str(out))
    made = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert Path(MOH_FILE) in made
    prompts = [p for p in made if str(p).startswith(SOUNDS_DIR)]
    assert {p.parts[-2] for p in prompts} >= {"bs", "en"}
    assert f"{len(prompts)} prompts" in said
    rootfs = pbx.settings.pbx_root / "rootfs"
    for rel in made:
        assert (out / rel).read_bytes() == (rootfs / rel).read_bytes(), rel
