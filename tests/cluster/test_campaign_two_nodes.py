"""One survey campaign dialled by two `serve` instances, each from its own Asterisk node:
the contacts are shared (each claimed by one write conditional on its state), so nobody is
called twice; and when one instance is killed and restarted mid-campaign it finds again only
its own node's attempts (before, it took the other node's ringing calls for calls that ended
while it was away, failed them and dialled those clients again)."""

from __future__ import annotations

import contextlib
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from core.surveys.campaign import RetryRule
from models.campaigns import CampaignError, CampaignStore, NewContact
from models.surveys import active_survey
from models.tables import Call, CampaignContact, CampaignStatus
from tests.cluster.conftest import Cluster
from tests.cluster.test_balancer import revive
from tests.integration.test_campaign_calls import settings
from tests.support import wait_until

CONTACTS = 16


async def contacts_of(cluster: Cluster, campaign_id: int) -> list[CampaignContact]:
    async with cluster.db.sessions() as session:
        return list(
            await session.scalars(
                select(CampaignContact).where(CampaignContact.campaign_id == campaign_id)
            )
        )


async def test_two_instances_dial_one_campaign_and_nobody_is_called_twice(
    cluster: Cluster,
) -> None:
    sessions = cluster.db.sessions
    survey = await wait_until(
        lambda: active_survey(sessions, "nps"), timeout=30, message="the shipped survey"
    )
    # Nobody answers (the simulated clients' default): one attempt each, then done.
    numbers = sorted({f"+3876{random.randrange(10**7, 10**8)}" for _ in range(CONTACTS)})
    rules = settings().rules
    once = RetryRule(delay_minutes=120, max_attempts=1)
    store = CampaignStore(sessions)
    campaign_id, count = await store.create(
        f"two-nodes-{numbers[0][-6:]}",
        survey.id,
        settings(
            ring_seconds=5,
            concurrency=8,
            rules=rules.model_copy(update={"retries": {**rules.retries, "no_answer": once}}),
        ),
        [NewContact(n, timezone="UTC") for n in numbers],
    )
    assert count == len(numbers)
    await store.set_status(campaign_id, CampaignStatus.RUNNING)

    async def both_ringing() -> bool:
        rows = await contacts_of(cluster, campaign_id)
        dialling = {c.node for c in rows if c.status == "dialling"}
        return dialling == {"pbx1", "pbx2"}

    await wait_until(both_ringing, timeout=60, message="both nodes dialling the campaign")
    second = cluster.node("pbx2").serve
    assert second is not None
    await second.crash_and_restart()  # SIGKILL; the new process reconciles its node

    async def all_called() -> list[CampaignContact] | None:
        rows = await contacts_of(cluster, campaign_id)
        return rows if all(r.attempts == 1 and r.status != "dialling" for r in rows) else None

    called = await wait_until(all_called, timeout=120, message="every contact called once")
    # No retry from here on. A campaign whose every contact rang out (the restarted
    # instance adopted its ringing attempt, so none failed) has finished by itself.
    with contextlib.suppress(CampaignError):
        await store.set_status(campaign_id, CampaignStatus.PAUSED)
    assert all(len(c.attempt_history) == 1 for c in called)
    # Each one rang out (no answer); a call that rang out while its instance was dead is not
    # known to have rung out: it is failed, retried by the campaign's rule, not at once.
    outcomes = {(c.status, c.last_outcome) for c in called}
    assert outcomes <= {("exhausted", "no_answer"), ("pending", "failed")}, outcomes
    for contact in called:
        if contact.status == "pending":
            assert contact.node == "pbx2" and contact.next_attempt_at is not None
            assert contact.next_attempt_at > datetime.now(UTC) + timedelta(minutes=20)
    async with sessions() as session:
        calls = list(await session.scalars(select(Call).where(Call.called_number.in_(numbers))))
    # Never two calls to anyone; and both instances dialled, each from its own node.
    per_number = Counter(c.called_number for c in calls)
    assert set(per_number) <= set(numbers) and max(per_number.values()) == 1, per_number
    for contact in called:
        if contact.number not in per_number:
            # Claimed by the killed instance and never placed: failed, retried by the rule.
            assert (contact.status, contact.last_outcome) == ("pending", "failed")
    by_node = Counter(c.node for c in calls)
    assert set(by_node) == {"pbx1", "pbx2"}, by_node
    assert {c.node for c in called} == {"pbx1", "pbx2"}


async def test_a_dead_nodes_survey_attempts_end_and_are_retried_by_the_rules(
    cluster: Cluster,
) -> None:
    """Both nodes ring survey contacts; node pbx1's Asterisk dies: its attempts end failed
    (the campaign's retry rule brings them back later, from any node), their call rows
    closed; node pbx2's ring on."""
    sessions = cluster.db.sessions
    survey = await active_survey(sessions, "nps")
    assert survey is not None
    numbers = sorted({f"+3876{random.randrange(10**7, 10**8)}" for _ in range(8)})
    store = CampaignStore(sessions)
    campaign_id, _ = await store.create(
        f"dead-node-{numbers[0][-6:]}",
        survey.id,
        settings(ring_seconds=60, concurrency=8),  # nobody answers: they ring on
        [NewContact(n, timezone="UTC") for n in numbers],
    )
    await store.set_status(campaign_id, CampaignStatus.RUNNING)

    async def all_ringing() -> list[CampaignContact] | None:
        rows = await contacts_of(cluster, campaign_id)
        dialling = [c for c in rows if c.status == "dialling"]
        nodes = {c.node for c in dialling}
        return rows if len(dialling) == len(numbers) and nodes == {"pbx1", "pbx2"} else None

    ringing = await wait_until(all_ringing, timeout=60, message="every contact ringing")
    on_first = {c.id for c in ringing if c.node == "pbx1"}
    try:
        cluster.node("pbx1").kill_asterisk()

        async def first_ended() -> list[CampaignContact] | None:
            rows = {c.id: c for c in await contacts_of(cluster, campaign_id)}
            done = [rows[i] for i in on_first if rows[i].status != "dialling"]
            return done if len(done) == len(on_first) else None

        ended = await wait_until(first_ended, timeout=30, message="pbx1's attempts ended")
        for contact in ended:
            assert (contact.status, contact.attempts) == ("pending", 1), contact.status
            assert contact.last_outcome == "failed" and contact.next_attempt_at is not None
        async with sessions() as session:
            calls = list(await session.scalars(select(Call).where(Call.called_number.in_(numbers))))
        for call in calls:
            if call.node == "pbx1":
                assert call.ended_at is not None and call.outcome == "failed", call.outcome
            else:
                assert call.ended_at is None  # still ringing on the live node
        still = [c for c in await contacts_of(cluster, campaign_id) if c.id not in on_first]
        assert {c.status for c in still} == {"dialling"}
    finally:
        await store.set_status(campaign_id, CampaignStatus.PAUSED)
        await revive(cluster, "pbx1")
