"""Editing a campaign's settings while it runs (the admin console and
``/api/campaigns/{campaign}/settings``): the editor's pattern for settings that are one
record, not versions of a definition. Read with its revision; saved only onto that revision
(409 ``changed_since`` when another admin saved since), checked by the same model the
campaign was created with (each problem at its field), what decides who is called fixed once
the contacts are loaded; every saved edit on the audit trail with what changed, which is the
settings' history. The running diallers read the settings at every tick.

May import ``core``, ``dialplan`` and ``models`` (see ``usecases``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.dialler import AgentCampaignSettings
from core.surveys.campaign import CampaignSettings
from dialplan import diff
from dialplan.validate import pydantic_problems
from models.campaign_settings import EDITABLE, SettingsConflict, save_settings, settings_history
from models.campaigns import CampaignError, CampaignStore
from models.tables import Campaign, CampaignStatus
from usecases.flow_editing import note_of

Sessions = async_sessionmaker[AsyncSession]
# Who is called was decided when the contacts were loaded from these: changing them now
# would not call anyone else, only make the settings lie about it.
FIXED: dict[bool, tuple[str, ...]] = {
    True: ("rules",),  # a survey campaign
    False: ("rules", "segment", "procedure"),  # an agent campaign
}


def _model(campaign: Campaign) -> type[BaseModel]:
    return CampaignSettings if campaign.kind == "survey" else AgentCampaignSettings


def fixed_keys(campaign: Campaign) -> tuple[str, ...]:
    return FIXED[campaign.kind == "survey"]


def full(campaign: Campaign) -> dict[str, Any]:
    """Every setting with its value, the defaults filled in."""
    return _model(campaign).model_validate(campaign.settings).model_dump(mode="json")


def check_edit(campaign: Campaign, wanted: object) -> tuple[dict[str, Any], list[diff.Change]]:
    """The settings an edit asks for, checked, and what it changes; pure."""
    if not isinstance(wanted, dict):
        raise CampaignError("bad_request", "settings: an object of the campaign's settings", 400)
    try:
        checked = _model(campaign).model_validate(wanted).model_dump(mode="json")
    except ValidationError as exc:
        problems = pydantic_problems(exc)
        raise CampaignError(
            "bad_settings",
            "; ".join(problems),
            422,
            problems=[
                {"at": at, "message": message}
                for at, _, message in (p.partition(": ") for p in problems)
            ],
        ) from None
    before = full(campaign)
    for key in fixed_keys(campaign):
        if checked.get(key) != before.get(key):
            raise CampaignError(
                "fixed_setting",
                f"{key}: fixed once the campaign's contacts were loaded; make a new campaign "
                "to call others",
                422,
                field=key,
            )
    return checked, diff.changes(before, checked)


def _shown(campaign: Campaign) -> dict[str, Any]:
    return {
        "id": campaign.id,
        "name": campaign.name,
        "kind": campaign.kind,
        "status": campaign.status.value,
        "settings": full(campaign),
        "revision": campaign.settings_revision,
        "fixed": list(fixed_keys(campaign)),
        # Settings that may be unset (null): the console shows them as a box left empty.
        "optional": sorted(
            name
            for name, field in _model(campaign).model_fields.items()
            if not field.is_required() and field.default is None
        ),
        "editable": campaign.status in EDITABLE,
    }


async def show(sessions: Sessions, ref: str | int) -> dict[str, Any]:
    return _shown(await CampaignStore(sessions).find(ref))


async def save(
    sessions: Sessions, ref: str | int, actor: str, body: Mapping[str, Any]
) -> dict[str, Any]:
    """``PUT .../settings``: ``{"settings": {...}, "revision": N, "note"?}``. Settings equal
    to the stored ones change nothing, whatever revision they were read at."""
    if unknown := set(body) - {"settings", "revision", "note"}:
        raise CampaignError(
            "bad_request", f"unknown fields {sorted(unknown)}: use settings, revision, note", 400
        )
    revision = body.get("revision")
    if not isinstance(revision, int) or isinstance(revision, bool):
        raise CampaignError(
            "bad_request", "revision: the settings' revision the edit was made on", 400
        )
    note = note_of(body.get("note"))
    store = CampaignStore(sessions)
    campaign = await store.find(ref)
    settings, changes = check_edit(campaign, body.get("settings"))
    if campaign.status not in EDITABLE:
        raise _not_editable(campaign.name, campaign.status)
    if changes:
        try:
            await save_settings(
                sessions,
                campaign.id,
                settings,
                revision=revision,
                actor=actor,
                note=note,
                changes=[c.to_json() for c in changes],
            )
        except SettingsConflict as exc:
            if exc.status is not None and exc.status not in EDITABLE:
                raise _not_editable(campaign.name, exc.status) from None
            raise CampaignError(
                "changed_since",
                f"the settings were saved by someone else since you read them (now revision "
                f"{exc.revision}): read them again and redo the edit",
                409,
                revision=exc.revision,
            ) from None
    return {**_shown(await store.find(campaign.id)), "changed": bool(changes)}


def _not_editable(name: str, status: CampaignStatus) -> CampaignError:
    return CampaignError(
        "bad_campaign_state",
        f"campaign {name!r} is {status.value}: its settings no longer change",
        409,
    )


async def history(sessions: Sessions, ref: str | int) -> dict[str, Any]:
    campaign = await CampaignStore(sessions).find(ref)
    found = await settings_history(sessions, campaign.id)
    return {
        "id": campaign.id,
        "revision": campaign.settings_revision,
        "changes": [
            {
                "revision": e.detail.get("revision"),
                "at": e.at.isoformat(),
                "by": e.actor,
                "note": e.detail.get("note"),
                "changes": e.detail.get("changes", []),
            }
            for e in found
        ],
    }
