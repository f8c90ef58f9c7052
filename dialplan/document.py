"""Reading a definition an admin wrote (a call flow, a survey, campaign settings) from YAML or
JSON into plain data: pure, shared by every definition.

The text comes from people we do not fully trust (an upload, a file handed around), so the
reader refuses before building anything what would cost far more than the text's size: a text
over ``MAX_DOCUMENT_BYTES``, YAML aliases beyond ``MAX_ALIASES`` (each alias copies its anchor,
so a few lines of nested aliases expand into gigabytes: the "billion laughs"), a document whose
size with every alias expanded exceeds ``MAX_EXPANDED_SIZE``, or nesting deeper than
``MAX_NESTING`` (the YAML composer and the JSON parser recurse once per level).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import PurePath
from typing import Any

import yaml  # type: ignore[import-untyped,unused-ignore]

MAX_DOCUMENT_BYTES = 1_000_000  # the shipped flow is 7 KB, the NPS survey 3 KB
MAX_ALIASES = 100
MAX_NESTING = 40  # a flow nests 6 levels deep (nodes.n.cases[0].when.intent[0])
# Characters of every scalar plus one per node, with each alias counted as a full copy of its
# anchor: what the document costs once built.
MAX_EXPANDED_SIZE = 2_000_000


class DocumentError(Exception):
    """A definition's text that cannot be read; ``problems`` holds one message per problem."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


# libyaml's parser (C) when PyYAML has it, six times the pure-Python one's speed on a large
# survey, under the pure-Python composer below: that is where aliases and nesting are counted.
try:
    from yaml.cyaml import CParser as _Parser  # type: ignore[import-untyped,unused-ignore]
except ImportError:  # PyYAML built without libyaml
    _Parser = yaml.parser.Parser
if _Parser is not yaml.parser.Parser:
    _Scanning: tuple[type, ...] = ()
else:
    _Scanning = (yaml.reader.Reader, yaml.scanner.Scanner)


_BASES: tuple[Any, ...] = (
    yaml.composer.Composer,
    *_Scanning,
    _Parser,
    yaml.constructor.SafeConstructor,
    yaml.resolver.Resolver,
)


class _Loader(*_BASES):  # type: ignore[misc]
    """The safe loader with YAML 1.2-ish booleans (only true/false: a language ``no`` stays a
    string), duplicate keys rejected (two nodes with one name would silently drop the first),
    and aliases and nesting counted while the document is composed (before anything is built:
    composing keeps one node per anchor, however often it is referred to)."""

    def __init__(self, stream: str) -> None:
        if _Scanning:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)
        else:
            _Parser.__init__(self, stream)
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)
        self.aliases = 0
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"more than {MAX_ALIASES} aliases (*name): write the values out",
                    self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        self.depth += 1
        try:
            if self.depth > MAX_NESTING:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"nested more than {MAX_NESTING} levels deep",
                    self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def _mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, int | float) and not isinstance(key, bool):
            key = key_node.value  # menu digits written unquoted: 1: information
        if key in result:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (line {mark.line + 1})", mark
            )
        result[key] = loader.construct_object(value_node, deep=deep)
    return result


_Loader.add_constructor("tag:yaml.org,2002:map", _mapping)


def _children(node: yaml.Node) -> Iterator[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        yield from node.value
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield key
            yield value


def expanded_size(root: yaml.Node, limit: int = MAX_EXPANDED_SIZE) -> int | None:
    """The composed document's size with every alias expanded (see ``MAX_EXPANDED_SIZE``), or
    None past ``limit`` or when an alias contains its own anchor (it never ends). A walk with
    its own stack, each shared node measured once: linear in the text, whatever it expands to."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # on the walk's current path
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            size = 1 + sum(sizes[id(child)] for child in _children(node))
            if size > limit:
                return None
            sizes[key] = size
        elif key in sizes:
            continue
        elif key in open_nodes:
            return None
        elif isinstance(node, yaml.ScalarNode):
            sizes[key] = 1 + len(node.value)
        else:
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node))
    return sizes[id(root)]


def _load_yaml(text: str, filename: str) -> Any:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if expanded_size(node) is None:
            raise DocumentError(
                [
                    f"{filename}: expands to more than {MAX_EXPANDED_SIZE:,} characters once "
                    "its aliases (*name) are copied out (or an alias contains itself)"
                ]
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _too_deep(data: Any, limit: int = MAX_NESTING) -> bool:
    """Whether parsed JSON nests deeper than ``limit`` (walked with its own stack)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return False


def read_document(text: str, filename: str) -> Any:
    """YAML or JSON (by the file's extension; otherwise a text opening with "{" is JSON) as
    plain data. A syntax error, or a text past the limits above, raises DocumentError naming
    the file (and the line when there is one)."""
    if len(text) > MAX_DOCUMENT_BYTES or len(text.encode("utf-8", "replace")) > MAX_DOCUMENT_BYTES:
        raise DocumentError(
            [f"{filename}: larger than {MAX_DOCUMENT_BYTES:,} bytes (a definition is text)"]
        )
    suffix = PurePath(filename).suffix.lower()
    as_json = suffix == ".json" or (suffix not in (".yaml", ".yml") and text.lstrip()[:1] == "{")
    try:
        if not as_json:
            return _load_yaml(text, filename)
        data = json.loads(text)
        if _too_deep(data):
            raise DocumentError([f"{filename}: nested more than {MAX_NESTING} levels deep"])
        return data
    except json.JSONDecodeError as exc:
        raise DocumentError(
            [f"{filename}: line {exc.lineno} column {exc.colno}: {exc.msg}"]
        ) from None
    except RecursionError:  # JSON: the parser recurses per level, and has no depth option
        raise DocumentError([f"{filename}: nested more than {MAX_NESTING} levels deep"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        if "maximum nesting depth" in problem:  # libyaml's own limit (1000), before ours
            raise DocumentError(
                [f"{filename}: nested more than {MAX_NESTING} levels deep"]
            ) from None
        raise DocumentError([f"{filename}: {where}{problem}"]) from None
