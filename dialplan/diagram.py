"""The diagram of a call flow, pure: ``to_dot`` writes a ``Flow`` as Graphviz DOT text (a
shape per node type, edges labelled with their keys and conditions, problem nodes in red,
optional call counts and a highlighted path, each node a link ``#node-NAME``), and
``clean_svg`` rebuilds what ``dot -Tsvg`` made of it from an allowlist of SVG elements and
attributes, so nothing an admin wrote can become markup, a script or an outside link. Running
``dot`` is the caller's business (``web.flow_diagram``).

Admins' text (prompt texts, branch conditions) reaches the SVG only as escaped text: XML
entities in the DOT (dot passes entities through as they are), and a backslash as a
private-use stand-in, because dot reads backslash sequences (``\\N``, ``\\n``) in labels and
tooltips differently in each attribute; ``clean_svg`` turns the stand-in back.

May import only ``dialplan`` and the standard library's pure modules (see ``dialplan``)."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dialplan.model import (
    AgreeSurveyNode,
    BranchNode,
    CallbackNode,
    Flow,
    HangupNode,
    LanguageNode,
    Match,
    MenuNode,
    PlayNode,
    RouteNode,
)
from dialplan.validate import targets

BACKSLASH = "\ue000"  # what a backslash travels through dot as (see the docstring)
LINK_PREFIX = "#node-"  # a node links to the page's form of it
# The SVG group of a node: not "node-NAME", which the page's form of the node holds, so an
# inlined diagram and the forms do not share ids.
ID_PREFIX = "flow-node-"
MAX_TEXT = 300  # characters of a prompt's text in a node's tooltip
MAX_LABEL = 48  # characters of a description or an edge's condition
MAX_PROBLEMS_SHOWN = 5  # a node's problems in its tooltip
# A node this many others lead to (the operator, a goodbye) keeps one edge; the others end in
# a small reference beside their source. Edges across the whole drawing cost dot most of its
# time (a 200-node flow took 5 s, a 500-node one over a minute) and hide the rest.
SHARED_FROM = 6

# (shape, style, fill) per node type: a shape tells the type apart at a glance.
SHAPES: dict[str, tuple[str, str, str]] = {
    "play": ("note", "filled", "#e3f2fd"),
    "language": ("hexagon", "filled", "#ede7f6"),
    "branch": ("diamond", "filled", "#fff8e1"),
    "menu": ("box", "rounded,filled", "#e8f5e9"),
    "route": ("cds", "filled", "#e0f7fa"),
    "callback": ("parallelogram", "filled", "#fce4ec"),
    "hangup": ("octagon", "filled", "#eeeeee"),
    "agree_survey": ("house", "filled", "#f1f8e9"),
}
PROBLEM = "#c62828"
PROBLEM_FILL = "#ffebee"
PATH = "#1565c0"
FONT = "Helvetica"


# ---- escaping -----------------------------------------------------------------------------


# Characters XML 1.0 cannot carry (or UTF-8 cannot encode: lone surrogates from JSON), and
# the other control characters: each becomes a space.
UNFIT = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def _text(value: str, limit: int | None = None) -> str:
    """Admin text as it may go into a DOT attribute: unfit characters out, shortened,
    XML-escaped, the backslash as its stand-in."""
    value = UNFIT.sub(" ", value).replace(BACKSLASH, "\ufffd")
    if limit is not None and len(value) > limit:
        value = value[: limit - 1].rstrip() + "…"
    value = (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("\\", BACKSLASH)
    )
    return value.replace("\n", "&#10;")


def _line(value: str, limit: int | None = None) -> str:
    """``_text`` on one line (a label's line, a node's DOT id)."""
    return _text(value.replace("\n", " "), limit)


def _quoted(name: str) -> str:
    """A node's DOT id: its name as a quoted string (nothing in ``_line``'s output ends the
    quotes: no ``"``, no backslash)."""
    return f'"{_line(name)}"'


def _fragment(name: str) -> str:
    """A node's name as an id and URL fragment: names are [a-z0-9_] (dialplan.model); any
    other character, in a flow that was not validated, is spelled out."""
    return "".join(
        c if c.isascii() and (c.isalnum() or c in "_-") else f".{ord(c):x}." for c in name
    )


def _attrs(**values: str | None) -> str:
    """DOT attributes; each value is a string already escaped for a quoted string, or an
    HTML-like label in <...>."""
    parts = []
    for key, value in values.items():
        if value is None:
            continue
        parts.append(f"{key}={value}" if value.startswith("<") else f'{key}="{value}"')
    return "[" + ", ".join(parts) + "]"


# ---- what a node says ---------------------------------------------------------------------


def describe_match(match: Match) -> str:
    """A branch case's condition in a few words ("known; client key, new")."""
    parts = []
    if match.intent is not None:
        parts.append("intent " + ", ".join(match.intent))
    if match.client_type is not None:
        parts.append("client " + ", ".join(match.client_type))
    if match.known is not None:
        parts.append("known" if match.known else "unknown")
    if match.overdue_debt is not None:
        parts.append("overdue debt" if match.overdue_debt else "no overdue debt")
    if match.language is not None:
        parts.append("language " + ", ".join(match.language))
    return "; ".join(parts) or "always"


def describe(node: Any) -> str:
    """The short line under a node's name: its prompt, intent, cases or survey."""
    if isinstance(node, MenuNode):
        return f"menu · {node.prompt} · {node.retries + 1} tries"
    if isinstance(node, PlayNode):
        return f"play · {node.prompt}"
    if isinstance(node, LanguageNode):
        keys = ", ".join(f"{d} {lang}" for d, lang in sorted(node.options.items()))
        return f"language · {keys}" if keys else "language"
    if isinstance(node, BranchNode):
        return f"branch · {len(node.cases)} case{'s' if len(node.cases) != 1 else ''}"
    if isinstance(node, RouteNode):
        return f"route · intent {node.intent}"
    if isinstance(node, CallbackNode):
        return f"callback · queue {node.queue}"
    if isinstance(node, HangupNode):
        return f"hang up · {node.prompt}" if node.prompt else "hang up"
    if isinstance(node, AgreeSurveyNode):
        return f"survey · {node.survey}"
    return str(getattr(node, "type", "node"))


def _prompt_text(flow: Flow, node: Any) -> str | None:
    prompt_name = getattr(node, "prompt", None)
    prompt = flow.prompts.get(prompt_name) if isinstance(prompt_name, str) else None
    if prompt is None:
        return None
    return prompt.text.get(flow.default_language) or next(iter(prompt.text.values()), None)


def edge_label(node: Any, field: str) -> str:
    """An edge's label from the field it comes from (``validate.targets``' path under the
    node): a menu's key, "timeout/invalid" for its ``on_fail``, a case's condition."""
    if field.startswith("options."):
        return field.removeprefix("options.")
    if field == "on_fail":
        return "timeout/invalid"
    if field == "default":
        return "otherwise"
    m = re.fullmatch(r"cases\[(\d+)\]\.next", field)
    if m and isinstance(node, BranchNode):
        return describe_match(node.cases[int(m.group(1))].when)
    return ""


def reachable(flow: Flow) -> set[str]:
    """The nodes a call can reach from the start or the after-hours callback."""
    seen: set[str] = set()
    stack = [n for n in (flow.start, flow.after_hours_callback) if n in flow.nodes]
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(t for _, t in targets(name, flow.nodes[name]) if t in flow.nodes)
    return seen


def shared_targets(flow: Flow) -> dict[str, str]:
    """Nodes at least ``SHARED_FROM`` others lead to, each with the one node whose edge to it
    is drawn ("": none, an entry): the first to reach it walking breadth-first from the
    entries, so it is drawn where calls first get to it."""
    sources: dict[str, set[str]] = {}
    for name, node in flow.nodes.items():
        for _, target in targets(name, node):
            sources.setdefault(target, set()).add(name)
    shared = {t for t, s in sources.items() if len(s) >= SHARED_FROM and t in flow.nodes}
    entries = [n for n in (flow.start, flow.after_hours_callback) if n in flow.nodes]
    kept = {t: "" for t in entries if t in shared}
    seen, queue = set(entries), deque(entries)
    while queue:
        name = queue.popleft()
        for _, target in targets(name, flow.nodes[name]):
            if target in shared:
                kept.setdefault(target, name)
            if target in flow.nodes and target not in seen:
                seen.add(target)
                queue.append(target)
    for target in shared:
        kept.setdefault(target, min(sources[target]))  # reached from no entry
    return kept


# ---- the DOT text -------------------------------------------------------------------------


def _label(lines: Iterable[tuple[str, str]]) -> str:
    """An HTML-like label from (kind, escaped text) lines: the name bold, the others small."""
    out = []
    for kind, text in lines:
        if kind == "name":
            out.append(f"<b>{text}</b>")
        elif kind == "problem":
            out.append(f'<font point-size="10" color="{PROBLEM}">{text}</font>')
        else:
            out.append(f'<font point-size="10">{text}</font>')
    return "<" + "<br/>".join(out) + ">"


def to_dot(
    flow: Flow,
    *,
    problems: Mapping[str, Sequence[str]] | None = None,
    counts: Mapping[str, int] | None = None,
    path: Sequence[str] = (),
) -> str:
    """The flow as DOT text for ``dot -Tsvg``.

    ``problems``: node name -> its problems (the validator's messages), drawn red with the
    messages in the tooltip; ``counts``: calls per node (a live view), shown under the
    description; ``path``: node names in the order a call walked them, drawn bold blue."""
    problems = problems or {}
    counts = counts or {}
    on_path = set(path)
    walked = set(itertools.pairwise(path))
    live = reachable(flow)
    lines = [
        "digraph flow {",
        f'  graph [id="flow-diagram", rankdir=TB, nodesep=0.35, ranksep=0.45, '
        f'fontname="{FONT}", tooltip="{_text(flow.name)}"];',
        f'  node [fontname="{FONT}", fontsize=12, margin="0.12,0.06", penwidth=1.2];',
        f'  edge [fontname="{FONT}", fontsize=10, color="#555555", arrowsize=0.7];',
    ]
    # Where calls come in: not nodes of the flow ("@" is never in a node's name).
    entries = [("@start", "call", flow.start)]
    if flow.after_hours_callback is not None:
        entries.append(("@after_hours", "after hours", flow.after_hours_callback))
    for dot_id, text, target in entries:
        lines.append(
            f'  "{dot_id}" '
            + _attrs(
                id=f"flow-entry-{dot_id[1:]}",
                label=_text(text),
                shape="plaintext",
                fontsize="10",
                fontcolor="#555555",
            )
            + ";"
        )
        lines.append(f'  "{dot_id}" -> {_quoted(target)} [style=dashed];')

    missing: dict[str, None] = {}
    shared = shared_targets(flow)
    refs: dict[tuple[str, str], None] = {}
    for name, node in flow.nodes.items():
        shape, style, fill = SHAPES.get(node.type, ("box", "filled", "#ffffff"))
        label = [("name", _line(name)), ("note", _line(describe(node), MAX_LABEL))]
        tip = [describe(node)]
        if prompt_text := _prompt_text(flow, node):
            tip.append(f"“{prompt_text}”")
        if flow.recording is not None and flow.recording.after == name:
            label.append(("note", "recording starts after this"))
        if name in counts:
            n = counts[name]
            label.append(("note", f"{n:,} call{'s' if n != 1 else ''}"))
        color, penwidth = "#424242", "1.2"
        if name not in live:
            style += ",dashed"
            tip.append("no path from the start reaches this node")
        node_problems = problems.get(name)
        if node_problems is not None:
            count = len(node_problems) or 1
            label.append(("problem", f"{count} problem{'s' if count != 1 else ''}"))
            tip.extend(f"⚠ {p}" for p in node_problems[:MAX_PROBLEMS_SHOWN])
            if len(node_problems) > MAX_PROBLEMS_SHOWN:
                tip.append(f"… and {len(node_problems) - MAX_PROBLEMS_SHOWN} more")
            color, fill, penwidth = PROBLEM, PROBLEM_FILL, "2.2"
        if name in on_path:
            penwidth = "3"
            if node_problems is None:
                color = PATH
        tooltip = "\n".join(_text(t, MAX_TEXT) for t in tip).replace("\n", "&#10;")
        lines.append(
            f"  {_quoted(name)} "
            + _attrs(
                id=ID_PREFIX + _fragment(name),
                URL=LINK_PREFIX + _fragment(name),
                tooltip=tooltip,
                label=_label(label),
                shape=shape,
                style=style,
                fillcolor=fill,
                color=color,
                penwidth=penwidth,
            )
            + ";"
        )
        for where, target in targets(name, node):
            field = where.removeprefix(f"nodes.{name}.")
            text = edge_label(node, field)
            edge: dict[str, str | None] = {
                "label": _line(text, MAX_LABEL) if text else None,
                "style": "dashed" if field == "on_fail" else None,
            }
            if target not in flow.nodes:
                missing[target] = None
                edge.update(color=PROBLEM, fontcolor=PROBLEM)
            elif (name, target) in walked:
                edge.update(color=PATH, fontcolor=PATH, penwidth="2.5")
            head = _quoted(target)
            if shared.get(target, name) != name:
                refs[(name, target)] = None
                head = _quoted(f"@ref {name} {target}")
            lines.append(f"  {_quoted(name)} -> {head} {_attrs(**edge)};")
    for source, target in refs:
        # A shared node drawn again, small, beside this source: a link to the node.
        _shape, _style, fill = SHAPES.get(flow.nodes[target].type, ("box", "", "#ffffff"))
        color = PROBLEM if target in problems else "#757575"
        if (source, target) in walked:
            color = PATH
        lines.append(
            f"  {_quoted(f'@ref {source} {target}')} "
            + _attrs(
                id=f"flow-ref-{_fragment(source)}--{_fragment(target)}",
                URL=LINK_PREFIX + _fragment(target),
                tooltip=_text(f"{target}: {describe(flow.nodes[target])} (drawn once)"),
                label=_line(f"→ {target}"),
                shape="box",
                style="rounded,filled,dashed",
                fillcolor=fill,
                color=color,
                fontsize="10",
                height="0.3",
            )
            + ";"
        )
    for target in missing:
        # A target that names no node (a problem at its source): drawn so the edge shows.
        lines.append(
            f"  {_quoted(target)} "
            + _attrs(
                id="flow-missing-" + _fragment(target),
                label=_label([("name", _line(target)), ("problem", "no such node")]),
                tooltip=_text(f"no node named {target}"),
                shape="box",
                style="dashed",
                color=PROBLEM,
                fontcolor=PROBLEM,
            )
            + ";"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


# ---- the SVG, rebuilt ---------------------------------------------------------------------

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
# What dot draws a graph with; any other element (and what is in it) is left out.
ELEMENTS = frozenset({"svg", "g", "a", "path", "polygon", "polyline", "ellipse", "text"})
ATTRIBUTES = frozenset(
    {
        "id",
        "class",
        "width",
        "height",
        "viewBox",
        "transform",
        "fill",
        "fill-opacity",
        "stroke",
        "stroke-width",
        "stroke-dasharray",
        "stroke-opacity",
        "points",
        "d",
        "cx",
        "cy",
        "rx",
        "ry",
        "x",
        "y",
        "text-anchor",
        "font-family",
        "font-size",
        "font-weight",
        "font-style",
    }
)
SAFE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")
SAFE_HREF = re.compile(r"^#[A-Za-z0-9_.-]{1,200}$")


def _escape(value: str, *, attribute: bool) -> str:
    value = value.replace(BACKSLASH, "\\")
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if attribute:
        value = value.replace('"', "&quot;").replace("\n", "&#10;")
    return value


def _local(tag: str) -> str:
    return tag.rpartition("}")[2] if tag.startswith(f"{{{SVG_NS}}}") else ""


def _write(element: ET.Element, out: list[str], *, root: bool = False) -> None:
    tag = _local(element.tag)
    if tag not in ELEMENTS:
        return
    attrs: list[tuple[str, str]] = []
    if root:
        attrs += [("xmlns", SVG_NS), ("xmlns:xlink", XLINK_NS)]
    title = None
    for key, value in element.attrib.items():
        if key in ATTRIBUTES:
            if key == "id" and not SAFE_ID.match(value):
                continue
            attrs.append((key, value))
        elif key == f"{{{XLINK_NS}}}href" and tag == "a" and SAFE_HREF.match(value):
            attrs.append(("xlink:href", value))
        elif key == f"{{{XLINK_NS}}}title" and tag == "a":
            title = value
    out.append(f"<{tag}")
    out.extend(f' {k}="{_escape(v, attribute=True)}"' for k, v in attrs)
    out.append(">")
    if title is not None:
        # Browsers show a <title> child as the tooltip; dot puts it in xlink:title only.
        out.append(f"<title>{_escape(title, attribute=False)}</title>")
    if tag == "text":
        out.append(_escape(element.text or "", attribute=False))
    for child in element:
        _write(child, out)
    out.append(f"</{tag}>\n")


def clean_svg(svg: str) -> str:
    """dot's SVG rebuilt from the allowlist: the drawing's elements and attributes only, text
    escaped again, links only to ``#fragments``; no comments, doctype, scripts, styles,
    event handlers or images. ValueError if it is not an SVG document."""
    try:
        root = ET.fromstring(svg)
    except ET.ParseError as exc:
        raise ValueError(f"not SVG: {exc}") from None
    if _local(root.tag) != "svg":
        raise ValueError("not SVG: the root is not <svg>")
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n']
    _write(root, out, root=True)
    return "".join(out)
