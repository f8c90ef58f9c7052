"""`centrala serve` is down (killed, not yet back) while callers ring the info line: Stasis
fails, the FastAGI fallback too, Asterisk plays its apology. Before the fix those calls left
no trace, and a caller who hung up while serve was down had their row closed at the restart
time. Now Asterisk's CDR (shipped enabled) is read back: every caller has a row, closed with
the times Asterisk recorded, and none twice."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from core.cdrs import UNSERVED
from models.tables import Call
from tests.integration.conftest import PBX, CallerLeg, Callers, Server
from tests.support import wait_until


async def one_row(server: Server, call: CallerLeg, what: str, timeout: float = 30) -> Call:
    async def found() -> Call | None:
        rows = await server.rows_for_channel(call.far_end)
        assert len(rows) <= 1, f"{len(rows)} rows for one call"
        return rows[0] if rows and rows[0].ended_at is not None else None

    row: Call = await wait_until(found, timeout=timeout, message=what)
    return row


def utc(at: datetime | None) -> datetime:
    assert at is not None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def asterisk_holds(pbx: PBX, port: int) -> bool:
    """Whether Asterisk still has open its end of the ARI WebSocket from ``port``."""
    ari = urlsplit(pbx.settings.ari_url)
    sockets = subprocess.run(
        [
            "ss",
            "-Htn",
            "state",
            "established",
            "state",
            "close-wait",
            f"( sport = :{ari.port} and dport = :{port} )",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return bool(sockets.stdout.strip())


async def test_calls_while_serve_is_down_are_reconciled_from_asterisks_cdr(
    server: Server, callers: Callers, pbx: PBX
) -> None:
    ws_port = (await server.wait_ready())["ari"]["ws_local_port"]
    # A caller in the IVR when serve dies, who hangs up before it is back.
    in_ivr = await callers.place(caller_id='"In IVR" <+38761999401>')
    await in_ivr.prompt_started("recording_notice")
    server.proc.send_signal(signal.SIGKILL)
    await asyncio.to_thread(server.proc.wait, 20)
    await in_ivr.hangup()
    hung_up = datetime.now(UTC)

    # Asterisk notices the dead WebSocket a moment later: a call arriving in between still
    # enters the app and waits there for the next serve (test_serve_killed covers that one).
    # These callers come once Asterisk has closed its end, when only the apology is left.
    await wait_until(
        lambda: not asterisk_holds(pbx, ws_port), message="Asterisk closing the dead WebSocket"
    )

    # Callers while serve is down: one hears the apology to its end, one hangs up during it.
    apology = await callers.place(caller_id='"Apology" <+38761999402>')
    impatient = await callers.place(caller_id='"Impatient" <+38761999403>')
    await impatient.wait_for("ChannelStateChange", where=lambda e: e["channel"]["state"] == "Up")
    await impatient.hangup()
    await apology.wait_for("StasisEnd", timeout=30)  # the apology played, Asterisk hung up

    restarted = datetime.now(UTC)
    server.spawn()
    await server.wait_ready()

    # The caller who left while serve was down: closed at the time Asterisk recorded.
    left = await one_row(server, in_ivr, "the IVR caller's row closed")
    assert left.handler == "ari"
    assert abs(utc(left.ended_at) - hung_up) < timedelta(seconds=3), (left.ended_at, hung_up)
    assert utc(left.ended_at) < restarted

    for call, number in ((apology, "+38761999402"), (impatient, "+38761999403")):
        row = await one_row(server, call, f"a row for {number}, reconciled from the CDR")
        assert (row.handler, row.outcome, row.called_number) == ("pbx", UNSERVED, "0800100200")
        assert row.caller_number == number
        assert utc(row.started_at) < utc(row.ended_at) < restarted
        assert await server.event_kinds(row.id) == ["reconciled"]
    apology_row = (await server.rows_for_channel(apology.far_end))[0]
    assert apology_row.answered_at is not None  # Asterisk answered to play the apology

    # A call served normally after the restart: a pass past its end makes no second row.
    served = await callers.place(caller_id='"Served" <+38761999404>')
    await served.prompt_started("recording_notice")
    await served.hangup()
    row = await server.wait_closed(served.far_end)
    assert row.handler == "ari"

    await server.wait_cdr_past(utc(row.ended_at))
    _, body = await server.status()
    assert body["cdr"]["file_found"] is True
    assert body["cdr"]["calls_recorded"] >= 2
    assert len(await server.rows_for_channel(served.far_end)) == 1
