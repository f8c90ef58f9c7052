"""What changed between two versions of a flow: the changes by path (``nodes.main.keys.3:
changed``), which the console shows at each node, and a unified diff of the flows written as
YAML, which reads like the file `centrala dialplan apply` takes. Pure; imports only yaml."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import yaml  # type: ignore[import-untyped,unused-ignore]

MISSING: Any = object()


@dataclass(frozen=True)
class Change:
    path: str  # dotted, list items as [i]: "nodes.main.keys.3", "languages[1]"
    kind: str  # "added", "removed" or "changed"
    before: Any
    after: Any

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "kind": self.kind}
        if self.kind != "added":
            out["before"] = self.before
        if self.kind != "removed":
            out["after"] = self.after
        return out


def _join(path: str, key: object) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _walk(path: str, before: Any, after: Any, out: list[Change]) -> None:
    if before is MISSING:
        out.append(Change(path, "added", None, after))
    elif after is MISSING:
        out.append(Change(path, "removed", before, None))
    elif isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(before.keys() | after.keys(), key=str):
            _walk(_join(path, key), before.get(key, MISSING), after.get(key, MISSING), out)
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for i, (b, a) in enumerate(zip(before, after, strict=True)):
            _walk(_join(path, i), b, a, out)
    elif before != after:
        # A list that grew or shrank is one change: item-by-item would misname every shifted one.
        out.append(Change(path, "changed", before, after))


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[Change]:
    """Every leaf or subtree that differs, in path order; empty for equal flows."""
    out: list[Change] = []
    _walk("", before, after, out)
    return out


def as_yaml(definition: dict[str, Any]) -> str:
    return str(yaml.safe_dump(definition, sort_keys=True, allow_unicode=True, width=100))


def unified(before: dict[str, Any], after: dict[str, Any], from_name: str, to_name: str) -> str:
    return "".join(
        difflib.unified_diff(
            as_yaml(before).splitlines(keepends=True),
            as_yaml(after).splitlines(keepends=True),
            fromfile=from_name,
            tofile=to_name,
        )
    )
