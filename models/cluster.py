"""The nodes' leases and the instances' heartbeats (``core.cluster`` decides; this writes).

Every write that changes a node's owner is conditional on what was read (the version, or
the owner being us), so two instances that decide at once cannot both win: the row's
version is the fencing token.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.cluster import Lease
from models.tables import Instance, PbxNode

Sessions = async_sessionmaker[AsyncSession]


async def lease_of(sessions: Sessions, node: str) -> Lease | None:
    async with sessions() as session:
        row = (
            await session.execute(
                select(PbxNode.owner, PbxNode.version).where(PbxNode.name == node)
            )
        ).first()
    return None if row is None else Lease(row.owner, int(row.version))


async def take(sessions: Sessions, node: str, me: str, seen: Lease | None, now: datetime) -> bool:
    """``node`` made ``me``'s if its row is still ``seen`` (None: there is no row yet);
    False when another instance moved first."""
    async with sessions() as session:
        try:
            async with session.begin():
                if seen is None:
                    session.add(
                        PbxNode(name=node, owner=me, version=1, owned_since=now, renewed_at=now)
                    )
                    return True
                done = await session.execute(
                    update(PbxNode)
                    .where(PbxNode.name == node, PbxNode.version == seen.version)
                    .values(owner=me, version=PbxNode.version + 1, owned_since=now, renewed_at=now)
                )
        except IntegrityError:  # another instance made the row first
            return False
    return bool(getattr(done, "rowcount", 0))


async def take_own(sessions: Sessions, node: str, me: str, now: datetime) -> bool:
    """The node's row says ``me`` already (this instance restarted): its lease renewed and
    its ownership dated from now."""
    async with sessions() as session, session.begin():
        done = await session.execute(
            update(PbxNode)
            .where(PbxNode.name == node, PbxNode.owner == me)
            .values(version=PbxNode.version + 1, owned_since=now, renewed_at=now)
        )
    return bool(getattr(done, "rowcount", 0))


async def renew(sessions: Sessions, node: str, me: str, now: datetime) -> bool:
    """The lease renewed; False when it is no longer ``me``'s (taken over)."""
    async with sessions() as session, session.begin():
        done = await session.execute(
            update(PbxNode)
            .where(PbxNode.name == node, PbxNode.owner == me)
            .values(version=PbxNode.version + 1, renewed_at=now)
        )
    return bool(getattr(done, "rowcount", 0))


async def release(sessions: Sessions, node: str, me: str, now: datetime) -> bool:
    """The node let go of (a stop): the next instance takes it at once."""
    async with sessions() as session, session.begin():
        done = await session.execute(
            update(PbxNode)
            .where(PbxNode.name == node, PbxNode.owner == me)
            .values(owner=None, version=PbxNode.version + 1, owned_since=None, renewed_at=now)
        )
    return bool(getattr(done, "rowcount", 0))


async def cdr_cursor(sessions: Sessions, node: str) -> tuple[int, int] | None:
    """Where the node's owners got to in its CDR file: (inode, offset); None, never read."""
    async with sessions() as session:
        row = (
            await session.execute(
                select(PbxNode.cdr_inode, PbxNode.cdr_offset).where(PbxNode.name == node)
            )
        ).first()
    if row is None or row[0] is None or row[1] is None:
        return None
    return int(row[0]), int(row[1])


async def save_cdr_cursor(sessions: Sessions, node: str, me: str, inode: int, offset: int) -> bool:
    """The node's CDR read up to (inode, offset), written only while ``me`` owns the node (an
    owner taken over while frozen moves nobody's place); False when it does not."""
    async with sessions() as session, session.begin():
        done = await session.execute(
            update(PbxNode)
            .where(PbxNode.name == node, PbxNode.owner == me)
            .values(cdr_inode=inode, cdr_offset=offset)
        )
    return bool(getattr(done, "rowcount", 0))


@dataclass(frozen=True)
class InstanceSeen:
    id: str
    host: str
    web_url: str
    node: str | None
    started_at: datetime


async def heartbeat(
    sessions: Sessions, me: InstanceSeen, now: datetime, *, stopped: bool = False
) -> None:
    """``me`` is alive (or, ``stopped``, has stopped) as of ``now``."""
    values = {
        "host": me.host,
        "web_url": me.web_url,
        "node": me.node,
        "started_at": me.started_at,
        "seen_at": now,
        "stopped_at": now if stopped else None,
    }
    async with sessions() as session:
        async with session.begin():
            done = await session.execute(
                update(Instance).where(Instance.id == me.id).values(**values)
            )
        if getattr(done, "rowcount", 0):
            return
        try:
            async with session.begin():
                session.add(Instance(id=me.id, **values))
        except IntegrityError:  # made meanwhile by this instance's previous process
            async with session.begin():
                await session.execute(update(Instance).where(Instance.id == me.id).values(**values))


@dataclass(frozen=True)
class NodeRow:
    name: str
    owner: str | None
    owned_since: datetime | None
    renewed_at: datetime


@dataclass(frozen=True)
class InstanceRow:
    id: str
    host: str
    web_url: str
    node: str | None
    started_at: datetime
    seen_at: datetime
    stopped_at: datetime | None


async def view(sessions: Sessions) -> tuple[list[NodeRow], list[InstanceRow]]:
    """Every node and every instance, by name."""
    async with sessions() as session:
        nodes = [
            NodeRow(r.name, r.owner, r.owned_since, r.renewed_at)
            for r in await session.scalars(select(PbxNode).order_by(PbxNode.name))
        ]
        instances = [
            InstanceRow(r.id, r.host, r.web_url, r.node, r.started_at, r.seen_at, r.stopped_at)
            for r in await session.scalars(select(Instance).order_by(Instance.id))
        ]
    return nodes, instances
