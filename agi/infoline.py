"""The free info line over FastAGI: the dialplan's second path into Centrala (used when the
ARI app is not connected, or deliberately from context ``infoline-agi``). Same call log."""

from __future__ import annotations

import contextlib

import structlog

from agi.protocol import AGIError, AGIHangup, AGIRequest, AGITimeout
from agi.server import AGISession
from models.calllog import CallLog, now
from models.tables import Direction

log = structlog.get_logger(__name__)


def _caller_field(value: str | None) -> str | None:
    # Asterisk passes the literal "unknown" when the caller sent no number or name.
    return None if value in (None, "", "unknown") else value


class InfolineAGI:
    def __init__(self, calllog: CallLog, greeting: str) -> None:
        self.calllog = calllog
        self.greeting = greeting.removeprefix("sound:")

    async def __call__(self, request: AGIRequest, session: AGISession) -> None:
        opened = await self.calllog.open_call(
            channel_id=request.uniqueid or "",
            linkedid=request.args[0] if request.args else None,
            direction=Direction.INBOUND,
            handler="agi",
            caller_number=_caller_field(request.callerid),
            caller_name=_caller_field(request.calleridname),
            called_number=request.extension,
            started_at=now(),
        )
        structlog.contextvars.bind_contextvars(call_id=opened.id)
        log.info("call_started", caller=opened.caller_e164, client_id=opened.client_id)
        outcome = "completed"
        try:
            await session.command("ANSWER")
            await self.calllog.answered(opened.id, now())
            await self.calllog.event(opened.id, "greeting_started")
            # Any key skips the greeting.
            await session.command("STREAM", "FILE", self.greeting, "0123456789*#", timeout=120)
            await self.calllog.event(opened.id, "greeting_finished")
            await session.command("HANGUP")
        except AGIHangup:
            outcome = "abandoned_in_ivr"
        except AGITimeout:
            # Asterisk stopped answering (the server closed the session): the greeting may
            # never have played, so this is no completed call.
            outcome = "timeout"
            raise
        except BaseException:
            outcome = "failed"
            raise
        finally:
            cause: int | None = None
            with contextlib.suppress(AGIError):
                reply = await session.command("GET", "VARIABLE", "HANGUPCAUSE", timeout=5)
                # 0 means "not set yet" (the channel is still being torn down).
                if reply.data and reply.data.isdigit() and int(reply.data) > 0:
                    cause = int(reply.data)
            if cause is None and outcome == "completed":
                cause = 16  # we hung up: normal clearing
            closed = await self.calllog.close(
                opened.id, at=now(), cause=cause, cause_text=None, outcome=outcome
            )
            if closed:
                log.info("call_ended", outcome=outcome, cause=cause)
