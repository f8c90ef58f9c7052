"""The flow diagram (dialplan/diagram.py, web/flow_diagram.py): the DOT text per node type,
edge labels, problems, counts and a walked path, checked on the text (pure, fast); the shipped
flow drawn by the real Graphviz `dot` (Debian's graphviz, installed by scripts/bootstrap: a
missing `dot` fails here, it is not skipped); admins' hostile text arriving as text, exactly,
never as markup; dot's failures as a 503 DiagramError."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest

from dialplan import diagram
from dialplan.diagram import clean_svg, describe_match, reachable, to_dot
from dialplan.model import Flow, Match
from dialplan.validate import load_flow, validate
from web import flow_diagram
from web.flow_diagram import DiagramError, render, run_dot

FLOW_FILE = Path(__file__).resolve().parents[2] / "dialplan" / "infoline.yaml"
SVG = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}"
HOSTILE = (
    '</title><script>alert(1)</script>" onload="alert(2)" \\N \\\\ \\n & &amp; '
    "čćžšđ ČĆŽŠĐ\nnext line ]]> <!-- x -->"
)


def infoline() -> Flow:
    return load_flow(FLOW_FILE.read_text(), str(FLOW_FILE))


def with_changes(**nodes: Any) -> Flow:
    data = infoline().model_dump(mode="json")
    data["nodes"].update(nodes)
    return Flow.model_validate(data)


def node_line(dot: str, name: str) -> str:
    return next(x for x in dot.splitlines() if x.startswith(f'  "{name}" ['))


def edge_lines(dot: str, source: str) -> dict[str, str]:
    """target -> the edge's attributes, for the edges out of ``source``."""
    found = re.findall(rf'^  "{source}" -> "([^"]+)" \[(.*)\];$', dot, re.M)
    return {target: attrs for target, attrs in found}


# ---- the DOT text ---------------------------------------------------------------------------


def test_each_node_is_a_link_to_its_form_with_an_id_and_a_shape_per_type() -> None:
    flow = infoline()
    dot = to_dot(flow)
    shapes = {"play": "note", "language": "hexagon", "branch": "diamond", "menu": "box"}
    shapes |= {"route": "cds", "callback": "parallelogram", "hangup": "octagon"}
    shapes |= {"agree_survey": "house"}
    for name, node in flow.nodes.items():
        line = node_line(dot, name)
        assert f'id="flow-node-{name}"' in line
        assert f'URL="#node-{name}"' in line
        assert f'shape="{shapes[node.type]}"' in line
    assert "<b>main_menu</b>" in node_line(dot, "main_menu")
    assert "menu · main_menu · 3 tries" in node_line(dot, "main_menu")
    assert "route · intent credit_application" in node_line(dot, "apply")
    assert "language · 9 en" in node_line(dot, "language")
    assert "recording starts after this" in node_line(dot, "notice")
    # The prompt's text, in the default language, is the tooltip.
    assert "Dobrodošli nazad." in node_line(dot, "greeting_known")


def test_edges_carry_the_menu_keys_the_fail_path_and_the_branch_conditions() -> None:
    dot = to_dot(infoline())
    menu = edge_lines(dot, "main_menu")
    assert {t: re.search(r'label="([^"]*)"', a)[1] for t, a in menu.items() if t != "operator"} == {  # type: ignore[index]
        "information": "1",
        "my_loan": "2",
        "complaint": "3",
        "apply": "4",
        "urgent": "5",
        "survey_after_call": "6",
    }
    to_operator = re.findall(r'^  "main_menu" -> "operator" \[(.*)\];$', dot, re.M)
    assert sorted(to_operator) == ['label="0"', 'label="timeout/invalid", style="dashed"']
    assert edge_lines(dot, "who") == {
        "greeting_known": 'label="known"',
        "greeting_new": 'label="otherwise"',
    }
    assert edge_lines(dot, "notice") == {"language": ""}
    assert '"@start" -> "notice"' in dot
    assert '"@after_hours" -> "callback_request"' in dot


def test_a_branch_condition_is_said_in_a_few_words() -> None:
    match = Match(intent=["sales"], client_type=["key", "new"], known=False, overdue_debt=True)
    assert describe_match(match) == "intent sales; client key, new; unknown; overdue debt"
    assert describe_match(Match(language=["bs"], overdue_debt=False)) == (
        "no overdue debt; language bs"
    )
    assert describe_match(Match()) == "always"


def test_problem_nodes_are_red_with_their_messages_and_others_are_not() -> None:
    dot = to_dot(infoline(), problems={"main_menu": ["options.1: no node named 'x'"]})
    menu = node_line(dot, "main_menu")
    assert f'color="{diagram.PROBLEM}"' in menu and f'fillcolor="{diagram.PROBLEM_FILL}"' in menu
    assert "1 problem" in menu
    assert "⚠ options.1: no node named 'x'" in menu
    assert diagram.PROBLEM not in node_line(dot, "notice")


def test_a_missing_target_is_drawn_red_and_an_unreachable_node_dashed() -> None:
    flow = with_changes(
        information={"type": "play", "prompt": "information_products", "next": "nowhere"},
        orphan={"type": "hangup"},
    )
    problems = validate(flow)
    assert any("nodes.information.next: no node named 'nowhere'" in p for p in problems)
    dot = to_dot(flow)
    assert 'id="flow-missing-nowhere"' in node_line(dot, "nowhere")
    assert f'color="{diagram.PROBLEM}"' in edge_lines(dot, "information")["nowhere"]
    assert "orphan" not in reachable(flow)
    assert 'style="filled,dashed"' in node_line(dot, "orphan")
    assert "dashed" not in node_line(dot, "goodbye")  # reached from the after-hours callback


def test_a_node_many_lead_to_keeps_one_edge_and_the_others_get_a_reference() -> None:
    """Edges across the drawing from everywhere to the operator made a 200-node flow take
    dot 5 s and a 500-node one over a minute."""
    plays = {f"x{i}": {"type": "play", "prompt": "welcome", "next": "operator"} for i in range(6)}
    menu = infoline().nodes["main_menu"].model_dump(mode="json")
    menu["options"] = {**{str(i + 1): f"x{i}" for i in range(6)}, "0": "operator"}
    flow = with_changes(main_menu=menu, **plays)
    assert diagram.shared_targets(flow) == {"operator": "main_menu"}
    dot = to_dot(flow, path=["main_menu", "x2", "operator"])
    assert set(edge_lines(dot, "main_menu")) >= {"operator", "x0", "x5"}
    for i in range(6):
        assert edge_lines(dot, f"x{i}") == {f"@ref x{i} operator": ANY}
        ref = node_line(dot, f"@ref x{i} operator")
        assert 'URL="#node-operator"' in ref and f'id="flow-ref-x{i}--operator"' in ref
    assert diagram.PATH in node_line(dot, "@ref x2 operator")
    assert diagram.PATH not in node_line(dot, "@ref x1 operator")
    assert diagram.SHARED_FROM == 6  # five are drawn as edges
    del plays["x4"], plays["x5"]
    menu["options"].update({"5": "information", "6": "information"})
    assert diagram.shared_targets(with_changes(main_menu=menu, **plays)) == {}


def test_counts_and_a_walked_path_are_shown() -> None:
    path = ["notice", "language", "who", "greeting_new", "main_menu", "apply"]
    dot = to_dot(infoline(), counts={"main_menu": 1234, "apply": 1}, path=path)
    assert "1,234 calls" in node_line(dot, "main_menu")
    assert "1 call<" in node_line(dot, "apply")
    for name in path:
        assert f'color="{diagram.PATH}", penwidth="3"' in node_line(dot, name)
    assert diagram.PATH in edge_lines(dot, "who")["greeting_new"]
    assert diagram.PATH not in edge_lines(dot, "who")["greeting_known"]
    assert diagram.PATH not in node_line(dot, "complaint")


def test_admin_text_in_the_dot_text_cannot_end_a_string_or_a_label() -> None:
    escaped = diagram._text(HOSTILE)
    assert not set(escaped) & set('"<>\\\n')
    assert diagram.BACKSLASH in escaped and "čćžšđ" in escaped
    assert diagram._text("a" * 400, 48) == "a" * 47 + "…"
    # Nothing XML or UTF-8 cannot carry (a lone surrogate can come from JSON).
    assert diagram._text("a\x00b\tc\ud800d\x85e\ufffe") == "a b c d e "


# ---- drawn by dot ---------------------------------------------------------------------------


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


async def test_the_shipped_flow_is_drawn_by_dot_each_node_clickable() -> None:
    flow = infoline()
    svg = await render(flow, problems={"who": ["cases[0].when: x"]})
    root = parse(svg)
    groups = {g.get("id"): g for g in root.iter(f"{SVG}g")}
    for name in flow.nodes:
        group = groups[f"flow-node-{name}"]
        link = group.find(f".//{SVG}a")
        assert link is not None and link.get(f"{XLINK}href") == f"#node-{name}", name
        assert name in "".join(t.text or "" for t in group.iter(f"{SVG}text"))
        assert group.find(f".//{SVG}a/{SVG}title") is not None  # the tooltip browsers show
    strokes = {p.get("stroke") for p in groups["flow-node-who"].iter(f"{SVG}polygon")}
    assert diagram.PROBLEM in strokes
    labels = {t.text for t in root.iter(f"{SVG}text")}
    assert {"1", "0", "timeout/invalid", "known", "otherwise"} <= labels


async def test_hostile_admin_text_comes_through_as_exactly_that_text() -> None:
    data = infoline().model_dump(mode="json")
    data["prompts"]["welcome"]["text"]["bs"] = HOSTILE
    data["prompts"]["welcome_back"]["text"]["bs"] = "nul\x00surrogate\ud800ok"
    data["nodes"]["who"]["cases"][0]["when"] = {"language": ['<img src=x onerror="alert(3)">\\']}
    flow = Flow.model_validate(data)
    # A node name the model would refuse, as a flow built without validation could carry.
    nodes = dict(flow.nodes)
    nodes['x"><script>alert(4)</script>'] = nodes.pop("goodbye")
    nodes["callback_request"] = nodes["callback_request"].model_copy(
        update={"next": 'x"><script>alert(4)</script>'}
    )
    flow = flow.model_copy(update={"nodes": nodes})
    svg = await render(flow)
    assert "<script" not in svg.lower() and "<img" not in svg.lower()
    root = parse(svg)
    for element in root.iter():
        assert element.tag.rpartition("}")[2] in diagram.ELEMENTS | {"title"}
        for key in element.attrib:
            assert not key.rpartition("}")[2].lower().startswith("on"), (element.tag, key)
        href = element.get(f"{XLINK}href")
        assert href is None or re.fullmatch(r"#[\w.-]+", href), href
    titles = [t.text or "" for t in root.iter(f"{SVG}title")]
    welcome = next(t for t in titles if "play · welcome\n" in t)
    assert welcome == f"play · welcome\n“{HOSTILE}”"  # exactly, backslashes and all
    assert "play · welcome_back\n“nul surrogate ok”" in titles
    texts = {t.text for t in root.iter(f"{SVG}text")}
    assert 'language <img src=x onerror="alert(3)">\\' in texts
    assert 'x"><script>alert(4)</script>' in texts
    hostile_group = next(
        g for g in root.iter(f"{SVG}g") if (g.get("id") or "").startswith("flow-node-x.22.")
    )
    assert re.fullmatch(r"flow-node-[\w.-]+", hostile_group.get("id") or "")


def test_clean_svg_keeps_the_drawing_and_drops_anything_active() -> None:
    svg = clean_svg(
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        'onload="alert(1)" width="10pt"><script>alert(2)</script>'
        "<style>@import url(//evil)</style><foreignObject><p>x</p></foreignObject>"
        '<image xlink:href="http://evil/x.png"/>'
        '<g id="ok" onclick="alert(3)" style="background:url(//evil)">'
        '<a xlink:href="javascript:alert(4)" xlink:title="t&lt;"><text x="1">a &amp; b</text></a>'
        '<a xlink:href="#node-a"><path d="M0,0"/></a></g></svg>'
    )
    assert svg == (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        'width="10pt">'
        '<g id="ok"><a><title>t&lt;</title><text x="1">a &amp; b</text>\n</a>\n'
        '<a xlink:href="#node-a"><path d="M0,0"></path>\n</a>\n</g>\n</svg>\n'
    )
    with pytest.raises(ValueError, match="not SVG"):
        clean_svg("<html/>")
    with pytest.raises(ValueError, match="not SVG"):
        clean_svg("<svg")


# ---- when dot cannot --------------------------------------------------------------------------


async def test_a_missing_dot_is_a_503_diagram_error() -> None:
    with pytest.raises(DiagramError) as caught:
        await run_dot("digraph {}", program="/nonexistent/dot")
    assert (caught.value.status, caught.value.error_id) == (503, "diagram_unavailable")


async def test_a_dot_that_hangs_is_killed_at_the_time_limit(tmp_path: Path) -> None:
    hanging = tmp_path / "dot"
    pid_file = tmp_path / "pid"
    hanging.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 60\n")
    hanging.chmod(0o755)
    with pytest.raises(DiagramError, match=r"longer than 0\.3 s"):
        await run_dot("digraph {}", max_seconds=0.3, program=str(hanging))
    pid = int(pid_file.read_text())
    assert not Path(f"/proc/{pid}").exists()  # killed and reaped


async def test_bad_dot_text_and_oversized_input_are_refused() -> None:
    with pytest.raises(DiagramError, match="could not draw"):
        await run_dot("digraph { a -> }")
    with pytest.raises(DiagramError, match="too large"):
        await run_dot("x" * (flow_diagram.MAX_DOT_BYTES + 1))


async def test_a_drawing_is_kept_and_not_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    flow = infoline()
    first = await render(flow, counts={"notice": 7})

    async def no_dot(*args: Any, **kwargs: Any) -> str:
        raise AssertionError("drawn again")

    monkeypatch.setattr(flow_diagram, "run_dot", no_dot)
    assert await render(flow, counts={"notice": 7}) == first
