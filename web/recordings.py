"""Call recordings on the desk: the list of a call's recordings, the audio to play in the page
or download (HTTP Range, so the audio element can seek), and the pause button's routes.

Who may hear a recording (``web.auth.may_hear_recording``): supervisors and admins any; an
agent or manager only the calls they handled (the call's agent, or one it was connected to
before a transfer). A recording past the retention period is 404; another's call is 403.
Pausing is a call control: the agent who has the call live, or a supervisor."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from core.errors import AgentDeskError
from core.ids import row_id
from core.recording import CONTENT_TYPES, file_path
from models.recordings import RecordingRow, RecordingStore
from web.auth import Action, User, may_hear_recording
from web.http import DeskWeb, _api, _check_control


@dataclass(frozen=True)
class RecordingFiles:
    """The recordings' rows, and the directory where `serve` reads their files."""

    store: RecordingStore
    directory: Path
    node_dirs: Mapping[str, Path] = field(default_factory=dict)  # the site's other nodes'

    def path(self, row: RecordingRow) -> Path:
        return file_path(row.file, self.directory, self.node_dirs)


RECORDINGS = web.AppKey("recordings", RecordingFiles)


async def _check_hear(files: RecordingFiles, user: User, call_id: str) -> None:
    exists, agents = await files.store.handled_by(call_id)
    if not exists:
        raise AgentDeskError("unknown_call", f"no call {call_id!r}", 404)
    if not may_hear_recording(user, agents):
        raise AgentDeskError("not_your_call", "this call's recordings are not yours to hear", 403)


def _listing(row: RecordingRow) -> dict[str, object]:
    item: dict[str, object] = row.to_json()
    if row.deleted_at is None and row.ended_at is not None:
        item["audio"] = f"/desk/api/recordings/{row.id}/audio"
        item["download"] = f"/desk/api/recordings/{row.id}/audio?download=1"
    return item


@_api(Action.USE_DESK)
async def call_recordings(request: web.Request, dw: DeskWeb, user: User) -> web.Response:
    files = request.app[RECORDINGS]
    call_id = request.match_info["call_id"][:64]
    await _check_hear(files, user, call_id)
    rows = await files.store.for_call(call_id)
    return web.json_response({"call_id": call_id, "recordings": [_listing(r) for r in rows]})


@_api(Action.USE_DESK)
async def recording_audio(request: web.Request, dw: DeskWeb, user: User) -> web.StreamResponse:
    files = request.app[RECORDINGS]
    recording_id = row_id(request.match_info["recording_id"])
    row = None if recording_id is None else await files.store.get(recording_id)
    if row is None:
        raise AgentDeskError("unknown_recording", "no such recording", 404)
    await _check_hear(files, user, row.call_id)
    if row.deleted_at is not None:
        raise AgentDeskError("recording_deleted", "deleted after the retention period", 404)
    path = files.path(row)
    if row.ended_at is None or not path.is_file():
        raise AgentDeskError("recording_unavailable", "the recording is not finished", 404)
    # aiohttp's FileResponse answers Range requests (206) and sends the file from a thread.
    response = web.FileResponse(path, headers={"Cache-Control": "private, no-store"})
    response.content_type = CONTENT_TYPES.get(row.format, "application/octet-stream")
    if request.query.get("download"):
        name = f"call-{row.call_id}{Path(row.file).suffix}"
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@_api(Action.USE_DESK)
async def pause_recording(request: web.Request, dw: DeskWeb, user: User) -> web.Response:
    call_id, step = request.match_info["call_id"], request.match_info["step"]
    _check_control(dw, user, call_id)
    await dw.infoline.control(call_id, f"{step}_recording", user.agent_id)
    return web.json_response({"call_id": call_id, "recording": step})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/desk/api/calls/{call_id}/recordings", call_recordings),
        web.get("/desk/api/recordings/{recording_id}/audio", recording_audio),
        web.post("/desk/api/calls/{call_id}/recording/{step:pause|resume}", pause_recording),
    ]
