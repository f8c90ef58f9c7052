"""Checks of an editable call flow before it is stored: pure functions.

``load_flow`` parses the YAML or JSON an admin wrote into a ``Flow`` (shape errors raise
``FlowError`` with "path.to.field: message" lines); ``validate`` then finds what the shape
cannot express: dangling node, prompt, queue and calendar names, unreachable nodes, loops a
caller can never leave, prompts missing a language, overflow loops, a missing default route.
Every problem is one human-readable line naming where it is; an empty list means valid.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from dialplan import document
from dialplan.model import (
    MAX_LANGUAGES,
    MAX_NODES,
    MAX_PROMPT_TEXT,
    MAX_PROMPTS,
    MAX_STEPS_WITHOUT_INPUT,
    MAX_TOTAL_PROMPT_TEXT,
    AgreeSurveyNode,
    BranchNode,
    CallbackNode,
    Flow,
    HangupNode,
    LanguageNode,
    Match,
    MenuNode,
    PlayNode,
    Prompt,
    RouteNode,
)

QUEUE_HOLD = "queue_hold"  # played to callers waiting in a queue: needed when any route exists
NODE_TYPES = ("play", "language", "branch", "menu", "route", "callback", "hangup", "agree_survey")


class FlowError(Exception):
    """A flow that cannot be used; ``problems`` holds one message per problem."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


# ---- parsing ------------------------------------------------------------------------------


def _loc(loc: tuple[int | str, ...]) -> str:
    parts = list(loc)
    # Discriminated nodes put the type tag in the path: nodes.m.menu.prompt -> nodes.m.prompt
    if len(parts) >= 3 and parts[0] == "nodes" and parts[2] in NODE_TYPES:
        del parts[2]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def pydantic_problems(exc: ValidationError) -> list[str]:
    """Pydantic's errors as "path.to.field: message" lines."""
    problems = []
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ")
        problems.append(f"{_loc(tuple(err['loc']))}: {msg}")
    return problems


def read_document(text: str, filename: str) -> Any:
    """YAML or JSON as plain data (``dialplan.document``: its size, aliases and nesting
    bounded); a text that cannot be read raises FlowError naming the line. Shared with
    surveys."""
    try:
        return document.read_document(text, filename)
    except document.DocumentError as exc:
        raise FlowError(exc.problems) from None


def load_flow(text: str, filename: str) -> Flow:
    """Parse a flow written as YAML or JSON (by the file's extension; otherwise a text opening
    with "{" is JSON). Raises FlowError with every problem of the shape found."""
    data = read_document(text, filename)
    if not isinstance(data, dict):
        kind = "empty" if data is None else type(data).__name__
        raise FlowError([f"{filename}: a flow is a mapping (name:, nodes:, ...), not {kind}"])
    try:
        flow = Flow.model_validate(data)
    except ValidationError as exc:
        raise FlowError(pydantic_problems(exc)) from None
    # Whatever reads a flow (apply, serve, the prompt builder) gets one within the limits.
    if problems := check_limits(flow):
        raise FlowError(problems)
    return flow


# ---- size limits --------------------------------------------------------------------------


def check_prompt_sizes(prompts: Mapping[str, Prompt], languages: Iterable[str]) -> list[str]:
    """Prompts few and short enough to be synthesised and stored. Shared with surveys."""
    problems = []
    if len(prompts) > MAX_PROMPTS:
        problems.append(f"prompts: {len(prompts)} prompts, at most {MAX_PROMPTS}")
    langs = list(languages)
    if len(langs) > MAX_LANGUAGES:
        problems.append(f"languages: {len(langs)} languages, at most {MAX_LANGUAGES}")
    total = 0
    for name, prompt in prompts.items():
        for lang, text in prompt.text.items():
            total += len(text)
            if len(text) > MAX_PROMPT_TEXT:
                problems.append(
                    f"prompts.{name}.text.{lang}: {len(text):,} characters, at most "
                    f"{MAX_PROMPT_TEXT:,} (record a media file for a longer announcement)"
                )
        total += sum(len(media) for media in prompt.media.values())
    if total > MAX_TOTAL_PROMPT_TEXT:
        problems.append(
            f"prompts: {total:,} characters of text in all, at most {MAX_TOTAL_PROMPT_TEXT:,}"
        )
    return problems


def _passes_through(node: Any) -> bool:
    """A node a caller who keyed ahead walks through without waiting: a play (the key skips
    it), a branch, a language choice (a known caller's, or any key) and a survey agreement."""
    return isinstance(node, PlayNode | BranchNode | LanguageNode | AgreeSurveyNode)


def _walks_without_input(flow: Flow) -> tuple[list[list[str]], int, str]:
    """Loops of pass-through nodes (a caller who keys ahead would walk them forever) and the
    longest walk through them: (loops, steps, the node it starts at). Walked with an explicit
    stack: a chain of any length costs no recursion."""
    nodes = flow.nodes
    passing = {name for name, node in nodes.items() if _passes_through(node)}
    edges = {
        name: sorted({t for _, t in targets(name, nodes[name]) if t in passing}) for name in passing
    }
    loops: list[list[str]] = []
    seen_loops: set[frozenset[str]] = set()
    longest: dict[str, int] = {}  # steps from the node on, itself included
    state: dict[str, int] = {}  # 1: on the current path, 2: measured
    path: list[str] = []
    for begin in sorted(passing):
        stack: list[tuple[str, bool]] = [(begin, False)]
        while stack:
            name, measured = stack.pop()
            if measured:
                path.pop()
                state[name] = 2
                longest[name] = 1 + max((longest.get(t, 0) for t in edges[name]), default=0)
                continue
            if state.get(name) == 2:
                continue
            path.append(name)
            state[name] = 1
            stack.append((name, True))
            for target in edges[name]:
                if state.get(target) == 1:
                    cycle = [*path[path.index(target) :], target]
                    if frozenset(cycle) not in seen_loops:
                        seen_loops.add(frozenset(cycle))
                        loops.append(cycle)
                elif state.get(target) is None:
                    stack.append((target, False))
    steps, start = max(((n, name) for name, n in longest.items()), default=(0, ""))
    return loops, steps, start


def check_limits(flow: Flow) -> list[str]:
    """The flow's size within the limits of ``dialplan.model``: checked before anything else
    (``load_flow`` raises them), so an oversized flow is never walked, stored or synthesised."""
    problems = []
    if len(flow.nodes) > MAX_NODES:
        problems.append(f"nodes: {len(flow.nodes):,} nodes, at most {MAX_NODES}")
    problems.extend(check_prompt_sizes(flow.prompts, flow.languages))
    if problems:
        return problems
    _loops, steps, start = _walks_without_input(flow)
    if steps > MAX_STEPS_WITHOUT_INPUT:
        problems.append(
            f"nodes.{start}: a caller walks {steps:,} play/branch/language steps from here "
            f"without waiting for a key, at most {MAX_STEPS_WITHOUT_INPUT} "
            "(put a menu in the chain)"
        )
    return problems


# ---- checks -------------------------------------------------------------------------------


def targets(name: str, node: Any) -> Iterator[tuple[str, str]]:
    """(where, target node name) for every node the node can lead to; ``where`` is the
    field's path as problems name it ("nodes.NAME.options.1"). Also the diagram's edges."""
    where = f"nodes.{name}"
    if isinstance(node, PlayNode | LanguageNode | CallbackNode | AgreeSurveyNode):
        yield f"{where}.next", node.next
    elif isinstance(node, BranchNode):
        for i, case in enumerate(node.cases):
            yield f"{where}.cases[{i}].next", case.next
        yield f"{where}.default", node.default
    elif isinstance(node, MenuNode):
        for digit, target in node.options.items():
            yield f"{where}.options.{digit}", target
        yield f"{where}.on_fail", node.on_fail


def _prompts(flow: Flow) -> Iterator[tuple[str, str]]:
    """(where, prompt name) for every prompt the flow plays."""
    for name, node in flow.nodes.items():
        where = f"nodes.{name}"
        if isinstance(node, PlayNode | LanguageNode):
            yield f"{where}.prompt", node.prompt
        elif isinstance(node, MenuNode):
            yield f"{where}.prompt", node.prompt
            if node.invalid_prompt is not None:
                yield f"{where}.invalid_prompt", node.invalid_prompt
        elif isinstance(node, CallbackNode):
            yield f"{where}.prompt", node.prompt
            yield f"{where}.confirm_prompt", node.confirm_prompt
        elif isinstance(node, HangupNode | AgreeSurveyNode) and node.prompt is not None:
            yield f"{where}.prompt", node.prompt
    if flow.after_hours_prompt is not None:
        yield "after_hours_prompt", flow.after_hours_prompt
    if flow.routes or any(isinstance(n, RouteNode) for n in flow.nodes.values()):
        yield f"{QUEUE_HOLD} (played to callers waiting in a queue)", QUEUE_HOLD


def _matches(flow: Flow) -> Iterator[tuple[str, Match]]:
    for i, route in enumerate(flow.routes):
        yield f"routes[{i}] ({route.name}).when", route.when
    for name, node in flow.nodes.items():
        if isinstance(node, BranchNode):
            for i, case in enumerate(node.cases):
                yield f"nodes.{name}.cases[{i}].when", case.when


def _queue_refs(flow: Flow) -> Iterator[tuple[str, str]]:
    """(where, queue id) for every queue the flow sends callers or callbacks to."""
    for i, route in enumerate(flow.routes):
        yield f"routes[{i}] ({route.name}).queue", route.queue
        for target in route.targets:
            if target.startswith("queue:"):
                yield f"routes[{i}] ({route.name}).targets", target.removeprefix("queue:")
    for name, node in flow.nodes.items():
        if isinstance(node, CallbackNode):
            yield f"nodes.{name}.queue", node.queue
    for qid, queue in flow.queues.items():
        if queue.overflow is not None and queue.overflow.queue is not None:
            yield f"queues.{qid}.overflow.queue", queue.overflow.queue


def _is_default(match: Match) -> bool:
    return all(value is None for value in match.model_dump().values())


def _fmt(items: Iterable[str]) -> str:
    return ", ".join(sorted(items))


def _check_languages(flow: Flow) -> list[str]:
    problems = []
    langs = set(flow.languages)
    if flow.default_language not in langs:
        problems.append(
            f"default_language: {flow.default_language!r} is not in languages [{_fmt(langs)}]"
        )
    seen: set[str] = set()
    for lang in flow.languages:
        if lang in seen:
            problems.append(f"languages: {lang!r} is listed twice")
        seen.add(lang)
    for name, node in flow.nodes.items():
        if isinstance(node, LanguageNode):
            for digit, lang in node.options.items():
                if lang not in langs:
                    problems.append(
                        f"nodes.{name}.options.{digit}: language {lang!r} is not one of the "
                        f"flow's languages [{_fmt(langs)}]"
                    )
    for where, match in _matches(flow):
        for lang in match.language or ():
            if lang not in langs:
                problems.append(
                    f"{where}.language: {lang!r} is not one of the flow's languages [{_fmt(langs)}]"
                )
    return problems


def _check_graph(flow: Flow) -> list[str]:
    problems = []
    nodes = flow.nodes
    if flow.start not in nodes:
        problems.append(f"start: no node named {flow.start!r}")
    edges: dict[str, list[str]] = {name: [] for name in nodes}
    for name, node in nodes.items():
        for where, target in targets(name, node):
            if target in nodes:
                edges[name].append(target)
            else:
                problems.append(f"{where}: no node named {target!r}")

    entries = [flow.start]
    if flow.after_hours_callback is not None:
        callback = nodes.get(flow.after_hours_callback)
        if callback is None:
            problems.append(f"after_hours_callback: no node named {flow.after_hours_callback!r}")
        elif not isinstance(callback, CallbackNode):
            problems.append(
                f"after_hours_callback: node {flow.after_hours_callback!r} is a "
                f"{callback.type} node, not a callback node"
            )
        else:
            entries.append(flow.after_hours_callback)
    if flow.recording is not None:
        after = nodes.get(flow.recording.after)
        if after is None:
            problems.append(f"recording.after: no node named {flow.recording.after!r}")
        elif not isinstance(after, PlayNode):
            # The recording starts when the notice that announces it has been played.
            problems.append(
                f"recording.after: node {flow.recording.after!r} is a {after.type} node, "
                "not a play node (the notice that calls are recorded)"
            )
    has_callback = isinstance(nodes.get(flow.after_hours_callback or ""), CallbackNode)
    for qid, queue in flow.queues.items():
        if queue.overflow is not None and queue.overflow.callback and not has_callback:
            problems.append(
                f"queues.{qid}.overflow.callback: needs after_hours_callback naming a "
                "callback node (it takes the callback request)"
            )

    reached: set[str] = set()
    stack = [e for e in entries if e in nodes]
    while stack:
        name = stack.pop()
        if name not in reached:
            reached.add(name)
            stack.extend(edges[name])
    if flow.start in nodes:
        unreachable = set(nodes) - reached
        if unreachable:
            problems.append(
                f"unreachable nodes (no path from start or after_hours_callback): "
                f"{_fmt(unreachable)}"
            )

    # Loops without exit: nodes from which no route or hangup can be reached. A node with a
    # dangling target (reported above) counts as an exit, not to report it twice.
    dangling = {
        name
        for name, node in nodes.items()
        if any(target not in nodes for _, target in targets(name, node))
    }
    exits = {
        name for name, node in nodes.items() if isinstance(node, RouteNode | HangupNode)
    } | dangling
    incoming: dict[str, list[str]] = {name: [] for name in nodes}
    for name, outgoing in edges.items():
        for target in outgoing:
            incoming[target].append(name)
    can_exit = set(exits)
    stack = list(exits)
    while stack:
        for source in incoming[stack.pop()]:
            if source not in can_exit:
                can_exit.add(source)
                stack.append(source)
    stuck = set(nodes) - can_exit
    reported: set[str] = set()
    for begin in sorted(stuck):
        if begin in reported:
            continue
        path: list[str] = []
        at = begin
        while at not in path and at not in reported:
            path.append(at)
            at = sorted(t for t in edges[at] if t in stuck)[0]  # stuck: all targets stuck
        reported.update(path)
        if at in path:  # a new cycle (else it leads into one reported already)
            cycle = [*path[path.index(at) :], at]
            problems.append(
                f"loop without exit: {' → '.join(cycle)} never reaches a route or hangup node"
            )
    for cycle in _walks_without_input(flow)[0]:
        if not set(cycle) <= stuck:  # a loop without exit is reported above
            problems.append(
                f"loop without input: {' → '.join(cycle)} (a caller who keys ahead would "
                "walk it forever: put a menu in it)"
            )
    return problems


def check_prompts(
    used: Iterable[tuple[str, str]], prompts: Mapping[str, Prompt], languages: Iterable[str]
) -> list[str]:
    """Every prompt used (``(where, name)``) exists and has text or media in every language.
    Shared by call flows and surveys."""
    problems = []
    checked: set[str] = set()
    for where, prompt_name in used:
        prompt = prompts.get(prompt_name)
        if prompt is None:
            problems.append(f"{where}: no prompt named {prompt_name!r}")
            continue
        if prompt_name in checked:
            continue
        checked.add(prompt_name)
        for lang in dict.fromkeys(languages):
            if not prompt.text.get(lang, "").strip() and not prompt.media.get(lang, "").strip():
                problems.append(f"prompts.{prompt_name}: no text or media for language {lang!r}")
    return problems


def _check_queues(flow: Flow, known_queues: Iterable[str]) -> list[str]:
    problems = []
    known = set(flow.queues) | set(known_queues)
    for where, qid in _queue_refs(flow):
        if qid not in known:
            problems.append(
                f"{where}: unknown queue {qid!r} (not in the flow's queues or the database)"
            )
    for qid, queue in flow.queues.items():
        if queue.calendar is not None and queue.calendar not in flow.calendars:
            problems.append(f"queues.{qid}.calendar: no calendar named {queue.calendar!r}")
    # Overflow chains among the flow's queues must end (a queue without overflow, a callback,
    # or a queue defined only in the database).
    reported: set[str] = set()
    for begin in sorted(flow.queues):
        chain: list[str] = []
        at: str | None = begin
        while at is not None and at in flow.queues and at not in chain and at not in reported:
            chain.append(at)
            overflow = flow.queues[at].overflow
            at = overflow.queue if overflow is not None else None
        reported.update(chain)
        if at is not None and at in chain:
            cycle = [*chain[chain.index(at) :], at]
            problems.append(
                f"queues.{at}.overflow: overflow loop {' → '.join(cycle)} "
                "(callers would be passed around forever)"
            )
    for name, calendar in flow.calendars.items():
        try:
            ZoneInfo(calendar.timezone)
        except (ValueError, OSError, KeyError):  # ZoneInfoNotFoundError is a KeyError
            problems.append(
                f"calendars.{name}.timezone: unknown time zone {calendar.timezone!r} "
                "(use an IANA name like Europe/Sarajevo)"
            )
    return problems


def _check_routes(flow: Flow) -> list[str]:
    problems = []
    route_nodes = {n: node for n, node in flow.nodes.items() if isinstance(node, RouteNode)}
    default_at = next((i for i, r in enumerate(flow.routes) if _is_default(r.when)), None)
    if (flow.routes or route_nodes) and default_at is None:
        problems.append(
            "routes: no default route: callers matching no rule would be stuck "
            "(end the routes with a rule without `when`)"
        )
    if default_at is not None:
        for i in range(default_at + 1, len(flow.routes)):
            problems.append(
                f"routes[{i}] ({flow.routes[i].name}): never tried, routes[{default_at}] "
                f"({flow.routes[default_at].name}) before it matches every caller"
            )
    else:
        matched: set[str] = set()
        for route in flow.routes:
            matched.update(route.when.intent or ())
        for name, node in route_nodes.items():
            if node.intent not in matched:
                problems.append(
                    f"nodes.{name}.intent: no route matches intent {node.intent!r} and there "
                    "is no default route"
                )
    return problems


def validate(flow: Flow, known_queues: Iterable[str] = ()) -> list[str]:
    """Every problem of the flow, one line each; empty when the flow can be applied.

    ``known_queues``: ids of queues defined in the database, which the flow may use without
    declaring them."""
    if problems := check_limits(flow):
        return problems
    return [
        *_check_languages(flow),
        *_check_graph(flow),
        *check_prompts(_prompts(flow), flow.prompts, flow.languages),
        *_check_queues(flow, known_queues),
        *_check_routes(flow),
    ]
