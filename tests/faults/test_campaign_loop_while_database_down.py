"""A survey campaign while PostgreSQL is down, on the real Asterisk: the loop places no new
call it could not record (a free channel stays free), says so once and once again when it
resumes; the call under way when the database went finishes its survey, its answers and
outcome journaled; once the database is back every contact is called, each once, every
answer stored once, no row open."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from ari_app.ami import AMIClient
from ari_app.campaigns import channel_id_for
from models.campaigns import CampaignStore, NewContact
from models.surveys import active_survey
from models.tables import Call, CampaignContact, CampaignStatus, SurveyAnswer
from tests.faults.dbdown import drained, final_rows, own_serve, said
from tests.integration.conftest import PBX
from tests.integration.test_campaign_calls import (  # noqa: F401  (ami: a fixture)
    CONSENT,
    NEXT,
    ami,
    number,
    settings,
    simulate,
)
from tests.support import wait_until


async def test_campaign_loop_while_database_down_pauses_dialling_and_resumes(
    pbx: PBX,
    ami: AMIClient,  # noqa: F811
    tmp_path: Path,
) -> None:
    async with own_serve(tmp_path, "_dbcampaign") as own:
        srv = own.srv
        store = CampaignStore(own.db.sessions)
        stored = await active_survey(own.db.sessions, "nps")
        assert stored is not None
        people = [number() for _ in range(3)]
        for num in people:
            # Consent, a 9, a pause (the outage begins in it), then yes to a call back.
            await simulate(ami, num, "human", keys=f"{CONSENT}{NEXT}9", keys2="w" * 8 + "1")
        campaign_id, _ = await store.create(
            f"dbdown-{people[0][-6:]}",
            stored.id,
            settings(concurrency=1),  # one at a time: a free channel during the outage
            [NewContact(n, timezone="UTC") for n in people],
        )
        await store.set_status(campaign_id, CampaignStatus.RUNNING)

        def dialled() -> int:
            return said(srv)["survey_call_dialled"]

        await wait_until(lambda: dialled() == 1, timeout=30, message="the first call placed")
        await own.outage.stop()

        def first_ended() -> bool:
            return said(srv)["survey_call_ended"] >= 1

        await wait_until(first_ended, timeout=60, message="the call under way ends")
        # Several ticks (0.25 s) with the channel free, counted in /status answers (each
        # takes a failed database probe): nothing is dialled.
        polls: list[int] = []

        async def paused_a_while() -> bool:
            code, _ = await srv.status()
            polls.append(code)
            return said(srv)["campaigns_paused_database_down"] == 1 and len(polls) >= 20

        await wait_until(paused_a_while, timeout=20, interval=0.1, message="the loop paused")
        assert set(polls) == {200}  # degraded, not dead
        assert dialled() == 1
        await own.outage.start()
        await wait_until(lambda: drained(srv), timeout=40, message="drained")

        async def all_done() -> list[CampaignContact] | None:
            async with own.db.sessions() as session:
                rows = list(
                    await session.scalars(
                        select(CampaignContact).where(CampaignContact.campaign_id == campaign_id)
                    )
                )
            return rows if all(r.status == "done" for r in rows) else None

        contacts = await wait_until(all_done, timeout=90, message="every contact surveyed")
        assert [c.attempts for c in contacts] == [1, 1, 1]
        for contact in contacts:  # the outcome is stored just before the row closes
            await srv.wait_closed(channel_id_for(campaign_id, contact.id, 1), timeout=20)
        async with own.db.sessions() as session:
            calls = list(await session.scalars(select(Call).where(Call.handler == "campaign")))
            assert sorted(c.called_number for c in calls) == sorted(people)  # each once
            for call in calls:
                answers = list(
                    await session.scalars(
                        select(SurveyAnswer.question_key, SurveyAnswer.value_int).where(
                            SurveyAnswer.call_id == call.id
                        )
                    )
                )
                assert call.survey_status == "completed", call.called_number
                assert len(answers) == 2, answers
        rows = await final_rows(own.db, [c.channel_id for c in calls])
        assert len(rows) == 3
        counted = said(srv)
        assert counted["campaigns_paused_database_down"] == 1, counted  # once, not per tick
        assert counted["campaigns_resumed_database_back"] == 1, counted
        assert counted["campaign_tick_failed"] == 0, counted
