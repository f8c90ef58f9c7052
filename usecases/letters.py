"""Printed letters from the CRM: each client's letter of a kind (``core.letters``), read a
chunk of clients at a time with what the contact policy needs (``models.notices``), and the
clients skipped by reason (opted out of letters, no postal address, printed that day
already, ...). The ``letters`` adapter typesets them; the operators print and post them.

Each letter printed is kept in the outbox as sent (``record``, once the PDF is made and
before it is handed over): the client's history shows it, the frequency cap counts it, and
the same batch asked again that day prints only the letters not printed yet, unless it is a
reprint (those printed already, again, as the outbox kept them). Two batches made at once
print a client's letter once: the one whose row is written first keeps it.

The letters the notices' jobs and supervisors queued (``waiting``: for clients whose
channel is a letter) are printed the same way: the batch's PDF made, the letters marked
printed (``printed``), the PDF handed over.

May import ``core``, ``models`` and ``usecases``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from core.letters import (
    MAX_LETTERS,
    PRINTED_TODAY,
    Letter,
    letter_for,
    letter_key,
    outbox_row,
    reprinted,
)
from core.notices import Channel, NoticeKind, Policy
from models import notices as store
from models.tables import Notice
from usecases.notices import CHUNK, Sessions


@dataclass
class Composed:
    letters: list[Letter] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)  # by reason
    unknown: list[int] = field(default_factory=list)  # ids no client has
    reprinted: int = 0  # printed that day already, and again now (asked for)
    records: list[dict[str, object]] = field(default_factory=list)  # the new letters' rows

    def summary(self) -> str:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items())) or "none"
        again = f", {self.reprinted} of them reprinted" if self.reprinted else ""
        return f"letters {len(self.letters)}{again} (skipped: {reasons})"


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
    reprint: bool = False,
) -> Composed:
    """The letters of ``kind`` to ``client_ids``, in their order, and those skipped (a
    letter printed on ``day`` already: ``printed_today``, or printed again if ``reprint``)."""
    result = Composed()
    since = now - timedelta(days=policy.cap_days)
    for start in range(0, len(client_ids), CHUNK):
        chunk = client_ids[start : start + CHUNK]
        keys = {cid: letter_key(kind, cid, day, product, message) for cid in chunk}
        # A reprint needs the letters as kept; otherwise only which were kept.
        kept = await store.by_keys(sessions, list(keys.values())) if reprint else {}
        had = set(kept) if reprint else await store.existing_keys(sessions, list(keys.values()))
        rows = {r.recipient.client_id: r for r in await store.recipients(sessions, chunk, since)}
        for cid in chunk:
            row = rows.get(cid)
            if row is None:
                result.unknown.append(cid)
                result.skipped["unknown_client"] += 1
                continue
            key = keys[cid]
            if key in had:
                # Its own row would count as today's contact: judged by what it was.
                if not reprint:
                    result.skipped[PRINTED_TODAY] += 1
                elif Channel.LETTER in row.recipient.opted_out:  # since it was printed
                    result.skipped["opted_out"] += 1
                else:
                    result.letters.append(_as_kept(kept[key], sender, day))
                    result.reprinted += 1
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
                result.records.append(outbox_row(made, kind, key, now))
            else:
                result.skipped[made.reason] += 1
    return result


async def record(sessions: Sessions, composed: Composed) -> bool:
    """Keeps the batch's new letters in the outbox as printed. A letter another batch kept
    first (made at the same moment) leaves this one, skipped as ``printed_today``: True
    then, and the PDF must be made again without it."""
    added = await store.add_keys(sessions, composed.records)
    lost = {int(str(r["client_id"])) for r in composed.records if r["key"] not in added}
    if not lost:
        return False
    composed.letters = [x for x in composed.letters if x.client_id not in lost]
    composed.records = [r for r in composed.records if r["key"] in added]
    composed.skipped[PRINTED_TODAY] += len(lost)
    return True


@dataclass
class Waiting:
    """The queued letters of a batch, in the order queued, with their outbox ids."""

    ids: list[int] = field(default_factory=list)
    letters: list[Letter] = field(default_factory=list)
    opted_out: list[int] = field(default_factory=list)  # since queued: not printed
    kinds: list[str] = field(default_factory=list)  # each letter's

    def summary(self) -> str:
        counted = Counter(self.kinds).items()
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(counted)) or "none"
        gone = f"; opted out since queued: {len(self.opted_out)}" if self.opted_out else ""
        return f"letters {len(self.letters)} ({kinds}){gone}"


async def waiting(
    sessions: Sessions, *, sender: Sequence[str], day: date, limit: int = MAX_LETTERS
) -> Waiting:
    """The letters queued for printing (oldest first, ``limit`` at most), dated ``day``;
    a client who opted out of letters since is left out (``printed`` marks theirs failed)."""
    rows = await store.letters_waiting(sessions, limit)
    opted = await store.opted_out_of(sessions, sorted({r.client_id for r in rows}), Channel.LETTER)
    batch = Waiting()
    for row in rows:
        if row.client_id in opted:
            batch.opted_out.append(row.id)
            continue
        batch.ids.append(row.id)
        batch.kinds.append(row.kind)
        batch.letters.append(_as_kept(row, sender, day))
    return batch


def _as_kept(row: Notice, sender: Sequence[str], day: date) -> Letter:
    return reprinted(
        client_id=row.client_id,
        language=row.language,
        address=row.address,
        subject=row.subject,
        body=row.body,
        sender=sender,
        day=day,
    )


async def printed(sessions: Sessions, batch: Waiting, now: datetime) -> bool:
    """Marks the batch's letters printed (and the opted out's failed). A letter another
    batch printed first leaves this one: True then, and the PDF must be made again."""
    marked = await store.letters_printed(sessions, batch.ids, now, refused=batch.opted_out)
    if len(marked) == len(batch.ids):
        return False
    kept = [
        (i, x, k)
        for i, x, k in zip(batch.ids, batch.letters, batch.kinds, strict=True)
        if i in marked
    ]
    batch.ids = [i for i, _, _ in kept]
    batch.letters = [x for _, x, _ in kept]
    batch.kinds = [k for _, _, k in kept]
    return True
