"""Printed letters from the CRM: each client's letter of a kind (``core.letters``), read a
chunk of clients at a time with what the contact policy needs (``models.notices``), and the
clients skipped by reason (opted out of letters, no postal address, ...). The ``letters``
adapter typesets them; the letters are printed and posted by the operators, so none goes
into the outbox.

May import ``core``, ``models`` and ``usecases``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from core.letters import Letter, letter_for
from core.notices import NoticeKind, Policy
from models import notices as store
from usecases.notices import CHUNK, Sessions


@dataclass
class Composed:
    letters: list[Letter] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)  # by reason
    unknown: list[int] = field(default_factory=list)  # ids no client has

    def summary(self) -> str:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items())) or "none"
        return f"letters {len(self.letters)} (skipped: {reasons})"


async def compose(
    sessions: Sessions,
    kind: NoticeKind,
    client_ids: Sequence[int],
    now: datetime,
    policy: Policy,
    *,
    sender: Sequence[str],
    day: date,
    product: str | None = None,
    message: str | None = None,
) -> Composed:
    """The letters of ``kind`` to ``client_ids``, in their order, and those skipped."""
    result = Composed()
    since = now - timedelta(days=policy.cap_days)
    for start in range(0, len(client_ids), CHUNK):
        chunk = client_ids[start : start + CHUNK]
        rows = {r.recipient.client_id: r for r in await store.recipients(sessions, chunk, since)}
        for cid in chunk:
            row = rows.get(cid)
            if row is None:
                result.unknown.append(cid)
                result.skipped["unknown_client"] += 1
                continue
            made = letter_for(
                kind,
                row,
                now,
                policy,
                sender=sender,
                day=day,
                product=product,
                message=message,
            )
            if isinstance(made, Letter):
                result.letters.append(made)
            else:
                result.skipped[made.reason] += 1
    return result
