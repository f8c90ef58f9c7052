"""The FastAGI paths while PostgreSQL is down, on the real Asterisk: a caller who agreed to
the post-call survey still takes it when their agent hangs up (the survey as last read, the
respondent from the live call), every answer, the final state and the detractor's callback
are journaled and in the database once it is back, each once; and a caller on the FastAGI
info line hears the greeting, their row drained once."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from models.tables import Call, Callback, SurveyAnswer
from tests.faults.dbdown import call_id_of, degraded, drained, final_rows, own_serve, said
from tests.integration.conftest import PBX, Callers
from tests.integration.test_infoline_paths import bridged_with, call_and_press
from tests.integration.test_postcall_survey import (  # noqa: F401  (agi: a fixture)
    AGICommands,
    agi,
    keys,
    say_something,
)
from tests.support import wait_until


async def test_postcall_survey_while_database_down_keeps_every_answer(
    pbx: PBX,
    callers: Callers,
    tmp_path: Path,
    agi: AGICommands,  # noqa: F811
) -> None:
    async with own_serve(tmp_path, "_dbsurvey") as own:
        srv = own.srv
        agent = await own.desk.agent("newdesk", ["new_clients"])
        await own.outage.stop()
        await wait_until(lambda: degraded(srv), timeout=20, message="/status degraded")

        # 6: a survey after the call, 0: an operator; the agent then hangs up first.
        call = await call_and_press(callers, "+38761999500", "60")
        names: list[str] = []

        async def with_agent() -> bool:
            names[:] = await bridged_with(callers, call)
            return any(f"Local/{agent}@test-agent" in n for n in names)

        await wait_until(with_agent, timeout=20, message="talking to the agent")
        agent_leg = next(
            c["id"]
            for c in await callers.ari.channels()
            if c["name"] in names and c["id"] != call.far_end
        )
        await callers.ari.hangup(agent_leg)
        # Consent, 3 (a detractor), a key into "tell us why", words, "#", yes to a call back.
        await keys(agi, call, "1", "3", "#")
        await agi.wait(call, "RECORD FILE")
        await say_something(call)
        await call.dtmf("#")
        await keys(agi, call, "1")

        def survey_ended() -> bool:
            return said(srv)["survey_ended"] == 1

        await wait_until(survey_ended, timeout=30, message="the survey ended")
        assert said(srv)["survey_refused"] == 0
        fallback = await callers.place(context="infoline-agi", caller_id='"Test" <061999501>')

        def fallback_ended() -> bool:
            return any(
                x.get("event") == "call_ended" and x.get("outcome") == "completed"
                for x in srv.log_lines()
            )

        await wait_until(fallback_ended, timeout=30, message="the FastAGI info line answered")
        await fallback.hangup()
        await call.hangup()
        _, body = await srv.status()
        assert body["db"]["journal"] > 0, body

        await own.outage.start()
        await wait_until(lambda: drained(srv), timeout=40, message="drained")
        await srv.wait_closed(call.far_end, timeout=20)
        await srv.wait_closed(fallback.far_end, timeout=20)
        rows = await final_rows(own.db, [call.far_end, fallback.far_end])
        surveyed, kinds = rows[call.far_end]
        assert surveyed.id == call_id_of(srv, call.far_end)
        assert (surveyed.survey_status, surveyed.agent_id) == ("completed", agent)
        assert kinds.count("survey_started") == 1 and kinds.count("survey_ended") == 1, kinds
        greeted, agi_kinds = rows[fallback.far_end]
        assert (greeted.handler, greeted.outcome) == ("agi", "completed")
        assert agi_kinds.count("greeting_finished") == 1, agi_kinds
        async with own.db.sessions() as session:
            answers = list(
                await session.scalars(
                    select(SurveyAnswer)
                    .where(SurveyAnswer.call_id == surveyed.id)
                    .order_by(SurveyAnswer.id)
                )
            )
            callbacks = list(
                await session.scalars(select(Callback).where(Callback.call_id == surveyed.id))
            )
            agi_rows = await session.scalars(select(Call.id).where(Call.handler == "agi"))
            assert len(list(agi_rows)) == 1
        assert [(a.question_key, a.value_int) for a in answers] == [
            ("recommend", 3),
            ("why", None),
            ("may_call_back", 1),
        ]
        assert answers[0].survey_id == surveyed.survey_id
        # An unknown caller (no lookup during the outage): the callback goes to the queue.
        assert [(c.reason, c.queue, c.number) for c in callbacks] == [
            ("nps_detractor", "new_clients", "+38761999500")
        ]
