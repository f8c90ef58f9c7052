"""The ARI WebSocket drops while a caller's prompt ends: Asterisk sends the PlaybackFinished to
nobody. Before the fix the caller sat in silence for good; now the reconnect resynchronises
every live call with Asterisk's view and the IVR goes on.

Made deterministic on the real Asterisk: while the prompt plays, `serve` is frozen (SIGSTOP)
and its WebSocket destroyed in the kernel, so the app is gone from Asterisk when the prompt
ends and its PlaybackFinished goes nowhere; then `serve` thaws and reconnects."""

from __future__ import annotations

import signal
import time

from tests.integration.conftest import PBX, Callers, Server, kill_ari_websocket

NEXT_PROMPT_WITHIN = 5.0  # seconds of silence a caller may hear after the link is back


async def test_prompt_ending_while_the_ari_websocket_is_down_does_not_leave_silence(
    server: Server, callers: Callers, pbx: PBX
) -> None:
    before = await server.wait_ready()
    port = before["ari"]["ws_local_port"]
    call = await callers.place(caller_id='"Flap" <+38761999300>')
    await call.prompt_started("recording_notice")

    server.proc.send_signal(signal.SIGSTOP)
    try:
        kill_ari_websocket(pbx.settings, port)
        # The prompt ends while the app has no WebSocket: its PlaybackFinished is lost.
        await call.wait_for("PlaybackFinished", timeout=30, far=True)
    finally:
        server.proc.send_signal(signal.SIGCONT)
    thawed = time.monotonic()

    await server.wait_ready(timeout=20, min_connects=before["ari"]["connects"] + 1)
    await call.prompt_started("choose_language", timeout=NEXT_PROMPT_WITHIN + 20)
    silence = time.monotonic() - thawed
    assert silence < NEXT_PROMPT_WITHIN, f"the caller heard {silence:.1f} s of silence"

    await call.hangup()
    row = await server.wait_closed(call.far_end)
    assert row.outcome == "abandoned_in_ivr"
    assert row.ivr_path[:2] == ["notice", "language"]
