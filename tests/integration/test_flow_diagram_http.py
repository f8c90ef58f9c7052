"""The flow's diagram over HTTP (``GET .../flows/{name}/diagram.svg``, web/flow_api.py) on
SQLite and PostgreSQL, no `centrala serve`, drawn by the real `dot`: the active version, an
old one and the asker's draft with its problems in red; supervisors see it, agents do not;
the SVG is answered with a policy that lets no script run in it."""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dialplan.diagram import PROBLEM
from tests.conftest import Database
from tests.integration.flow_site import BEARER, Site, flow_site

BASE = "/api/flows/infoline"
DESK = "/desk/api/flows/infoline"
SVG = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}"


@pytest.fixture
async def site(database: Database) -> AsyncIterator[Site]:
    async with flow_site(database) as made:
        yield made


async def diagram(
    site: Site, query: str = "", headers: dict[str, str] | None = None, path: str = DESK
) -> tuple[int, str, Any]:
    resp = await site.client.get(f"{path}/diagram.svg{query}", headers=headers)
    return resp.status, resp.content_type, await resp.text()


def node_groups(svg: str) -> dict[str, ET.Element]:
    root = ET.fromstring(svg)
    return {
        g.get("id", "").removeprefix("flow-node-"): g
        for g in root.iter(f"{SVG}g")
        if g.get("id", "").startswith("flow-node-")
    }


def is_red(group: ET.Element) -> bool:
    return any(shape.get("stroke") == PROBLEM for shape in group.iter())


async def test_a_supervisor_gets_the_active_flow_as_svg_each_node_a_link(site: Site) -> None:
    supervisor = await site.desk_headers("supervisor")
    resp = await site.client.get(f"{DESK}/diagram.svg", headers=supervisor)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "image/svg+xml"
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Content-Disposition"] == 'inline; filename="infoline-version-1.svg"'
    groups = node_groups(await resp.text())
    assert {"notice", "main_menu", "operator", "callback_request", "goodbye"} <= set(groups)
    link = groups["main_menu"].find(f".//{SVG}a")
    assert link is not None and link.get(f"{XLINK}href") == "#node-main_menu"
    assert not any(is_red(g) for g in groups.values())  # the shipped flow has no problems


async def test_the_draft_is_drawn_with_its_problems_at_their_nodes(site: Site) -> None:
    admin = await site.desk_headers("admin", agent="admin-draw")
    status, _, body = await diagram(site, "?version=draft", admin)
    assert (status, '"no_draft"' in body) == (404, True)

    start = await (await site.client.get(f"{DESK}/draft", headers=admin)).json()
    edited = copy.deepcopy(start["definition"])
    edited["nodes"]["information"]["next"] = "nowhere"  # a dangling target: a problem
    resp = await site.client.put(f"{DESK}/draft", json={"definition": edited}, headers=admin)
    assert resp.status == 200, await resp.text()

    status, content_type, svg = await diagram(site, "?version=draft", admin)
    assert (status, content_type) == (200, "image/svg+xml"), svg
    groups = node_groups(svg)
    assert is_red(groups["information"]) and not is_red(groups["main_menu"])
    title = groups["information"].find(f".//{SVG}title")
    assert title is not None and "next: no node named 'nowhere'" in (title.text or "")
    assert "no such node" in svg  # the missing target is drawn
    # The live version is not the draft; another admin has no draft.
    assert not is_red(node_groups((await diagram(site, "", admin))[2])["information"])
    other = await site.desk_headers("admin", agent="admin-other")
    assert (await diagram(site, "?version=draft", other))[0] == 404


async def test_versions_by_number_and_bad_versions(site: Site) -> None:
    status, content_type, svg = await diagram(site, "?version=1", BEARER, path=BASE)
    assert (status, content_type) == (200, "image/svg+xml")
    assert "main_menu" in node_groups(svg)
    for query, expected, error_id in (
        ("?version=99", 404, "unknown_version"),
        ("?version=abc", 400, "bad_request"),
        ("?version=" + "9" * 30, 400, "bad_request"),
    ):
        status, _, body = await diagram(site, query, BEARER, path=BASE)
        assert (status, f'"{error_id}"' in body) == (expected, True), (query, body)
    status, _, body = await diagram(site, "", BEARER, path="/api/flows/nosuch")
    assert (status, '"unknown_flow"' in body) == (404, True)


async def test_agents_and_strangers_do_not_see_the_diagram(site: Site) -> None:
    agent = await site.desk_headers("agent")
    assert (await diagram(site, "", agent))[0] == 403
    assert (await diagram(site, "", {}))[0] == 401
    assert (await diagram(site, "", {}, path=BASE))[0] == 401
