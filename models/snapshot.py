"""What `serve` needs to answer calls without the database, as it last read it from there: the
active flow, the queues' settings, the agents' profiles and phones, who is logged in (and
paused), and the active surveys.

Why a file of our own and not only memory: a `serve` that starts while the database is down
(a host rebooted, PostgreSQL slower to come up) has nothing in memory. It answers from this
file, journals its writes and drains them when the database is back. With no file at all (a
first start with no database) it cannot know the flow, says so and keeps retrying; the
dialplan's FastAGI fallback answers the callers meanwhile.

The file (``DATA_DIR/snapshot.json``, 0600: it names agents and their phones) is replaced
atomically (a temporary file, fsync, rename) only when what was read differs from what it
holds, so an unchanged read costs a comparison, not a write. Agents' sessions are written
here as they change, journaled or not, so a `serve` restarted during an outage logs the same
agents in. It is a cache: a damaged or foreign file is ignored (logged), never fatal.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from core.acd import AgentProfile
from core.surveys.model import Survey
from dialplan.model import Flow, QueueDef

log = structlog.get_logger(__name__)

VERSION = 1


@dataclass(frozen=True)
class SessionRow:
    """An agent's log-in as ``agent_sessions`` keeps it (the fields a restart reads)."""

    agent_id: str
    endpoint: str
    mode: str
    pause_reason: str | None = None
    nailed_channel: str | None = None
    nailed_bridge: str | None = None
    logged_in_at: str | None = None  # ISO 8601
    node: str | None = None  # the node whose instance holds it (several nodes)


@dataclass(frozen=True)
class CachedSurvey:
    id: int
    version: int
    survey: Survey


def _empty() -> dict[str, Any]:
    return {
        "version": VERSION,
        "flows": {},
        "queues": None,
        "agents": {},
        "sessions": None,
        "surveys": {},
    }


class Snapshot:
    """``path`` None: kept in memory only (tools and tests that need no file)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._data = self._load()
        self._dirty = False
        self._lock = asyncio.Lock()

    def _load(self) -> dict[str, Any]:
        if self.path is None:
            return _empty()
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return _empty()
        except (OSError, ValueError) as exc:
            log.error("snapshot_unreadable", path=str(self.path), error=str(exc)[:200])
            return _empty()
        if not isinstance(data, dict) or data.get("version") != VERSION:
            log.error("snapshot_unknown_version", path=str(self.path))
            return _empty()
        return {**_empty(), **data}

    @property
    def has_flow(self) -> bool:
        return bool(self._data["flows"])

    # ---- reads (what the database said last) ---------------------------------------------

    def flow(self, name: str) -> tuple[int, Flow] | None:
        stored = self._data["flows"].get(name)
        if not isinstance(stored, dict):
            return None
        try:
            return int(stored["version"]), Flow.model_validate(stored["flow"])
        except (KeyError, TypeError, ValueError):
            return None

    def queues(self) -> dict[str, QueueDef] | None:
        stored = self._data["queues"]
        if not isinstance(stored, dict):
            return None
        try:
            return {k: QueueDef.model_validate(v) for k, v in stored.items()}
        except ValueError:
            return None

    def agent(self, agent_id: str) -> tuple[AgentProfile, str | None] | None:
        stored = self._data["agents"].get(agent_id)
        if not isinstance(stored, dict):
            return None
        return _profile(agent_id, stored), stored.get("endpoint")

    def profiles(self, agent_ids: list[str]) -> list[AgentProfile]:
        found = (self.agent(a) for a in agent_ids)
        return [f[0] for f in found if f is not None]

    def sessions(self) -> list[SessionRow] | None:
        stored = self._data["sessions"]
        if not isinstance(stored, dict):
            return None
        return [SessionRow(**row) for _, row in sorted(stored.items())]

    def survey(self, name: str) -> CachedSurvey | None:
        stored = self._data["surveys"].get(name)
        if not isinstance(stored, dict):
            return None
        try:
            return CachedSurvey(
                int(stored["id"]), int(stored["version"]), Survey.model_validate(stored["survey"])
            )
        except (KeyError, TypeError, ValueError):
            return None

    # ---- what was read (or written) now ----------------------------------------------------

    def _set(self, section: str, key: str | None, value: Any) -> None:
        if key is None:
            if self._data[section] != value:
                self._data[section] = value
                self._dirty = True
            return
        table = self._data[section]
        if value is None:
            if key in table:
                del table[key]
                self._dirty = True
        elif table.get(key) != value:
            table[key] = value
            self._dirty = True

    def set_flow(self, name: str, version: int, flow: Flow) -> None:
        current = self._data["flows"].get(name)
        if isinstance(current, dict) and current.get("version") == version:
            return  # a version never changes: no need to compare the whole flow
        self._set("flows", name, {"version": version, "flow": flow.model_dump(mode="json")})

    def set_queues(self, queues: dict[str, QueueDef]) -> None:
        self._set("queues", None, {k: q.model_dump(mode="json") for k, q in queues.items()})

    def set_agent(self, profile: AgentProfile, endpoint: str | None) -> None:
        if endpoint is None:
            endpoint = self._endpoint(profile.id)
        self._set("agents", profile.id, _agent_json(profile, endpoint))

    def set_agents(self, agents: list[tuple[AgentProfile, str | None]]) -> None:
        """Every active agent (those not among them are gone or inactive)."""
        self._set("agents", None, {p.id: _agent_json(p, e) for p, e in agents})

    def _endpoint(self, agent_id: str) -> str | None:
        stored = self._data["agents"].get(agent_id)
        return stored.get("endpoint") if isinstance(stored, dict) else None

    def drop_agent(self, agent_id: str) -> None:
        """No (active) agent of that id any more."""
        self._set("agents", agent_id, None)

    def set_sessions(self, rows: list[SessionRow]) -> None:
        self._set("sessions", None, {r.agent_id: _session_json(r) for r in rows})

    def session_saved(self, row: SessionRow) -> None:
        if self._data["sessions"] is None:
            self._data["sessions"] = {}
        self._set("sessions", row.agent_id, _session_json(row))

    def session_paused(self, agent_id: str, reason: str | None) -> None:
        table = self._data["sessions"] or {}
        if agent_id in table and table[agent_id].get("pause_reason") != reason:
            table[agent_id] = {**table[agent_id], "pause_reason": reason}
            self._dirty = True

    def session_dropped(self, agent_id: str) -> None:
        if self._data["sessions"] is not None:
            self._set("sessions", agent_id, None)

    def set_survey(self, name: str, survey_id: int, version: int, survey: Survey) -> None:
        current = self._data["surveys"].get(name)
        if isinstance(current, dict) and current.get("id") == survey_id:
            return  # a stored version never changes
        self._set(
            "surveys",
            name,
            {"id": survey_id, "version": version, "survey": survey.model_dump(mode="json")},
        )

    # ---- the file ------------------------------------------------------------------------

    async def save(self) -> None:
        """Write the file if anything changed since it was last written."""
        if not self._dirty:
            return
        if self.path is None:
            self._dirty = False
            return
        async with self._lock:
            if not self._dirty:
                return
            self._dirty = False
            path = self.path
            body = json.dumps(self._data, sort_keys=True, ensure_ascii=False)
            try:
                await asyncio.to_thread(_write_atomically, path, body)
            except OSError as exc:
                self._dirty = True  # the next change tries again
                log.error("snapshot_write_failed", path=str(self.path), error=str(exc)[:200])


def _write_atomically(path: Path, body: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, body.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power cut
    finally:
        os.close(dir_fd)


def _profile(agent_id: str, stored: dict[str, Any]) -> AgentProfile:
    return AgentProfile(
        id=agent_id,
        name=str(stored.get("name", agent_id)),
        role=str(stored.get("role", "agent")),
        skills=frozenset(stored.get("skills") or ()),
        queues={str(k): int(v) for k, v in (stored.get("queues") or {}).items()},
    )


def _agent_json(profile: AgentProfile, endpoint: str | None) -> dict[str, Any]:
    return {
        "name": profile.name,
        "role": profile.role,
        "skills": sorted(profile.skills),
        "queues": dict(profile.queues),
        "endpoint": endpoint,
    }


def _session_json(row: SessionRow) -> dict[str, Any]:
    return {
        "agent_id": row.agent_id,
        "endpoint": row.endpoint,
        "mode": row.mode,
        "pause_reason": row.pause_reason,
        "nailed_channel": row.nailed_channel,
        "nailed_bridge": row.nailed_bridge,
        "logged_in_at": row.logged_in_at,
        "node": row.node,
    }


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
