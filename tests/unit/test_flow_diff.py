"""dialplan/diff.py: changes by path (added, removed, changed; a list that changes length is
one change) and the unified YAML diff; usecases.flow_editing.problem_items puts each of the
validator's problems at its node."""

from __future__ import annotations

from dialplan.diff import changes, unified
from usecases.flow_editing import problem_items


def test_changes_are_named_by_path() -> None:
    before = {
        "nodes": {"menu": {"options": {"1": "a", "2": "b"}, "retries": 2}},
        "languages": ["bs"],
    }
    after = {
        "nodes": {"menu": {"options": {"1": "a", "3": "c"}, "retries": 3}},
        "languages": ["bs", "en"],
    }
    assert [c.to_json() for c in changes(before, after)] == [
        {"path": "languages", "kind": "changed", "before": ["bs"], "after": ["bs", "en"]},
        {"path": "nodes.menu.options.2", "kind": "removed", "before": "b"},
        {"path": "nodes.menu.options.3", "kind": "added", "after": "c"},
        {"path": "nodes.menu.retries", "kind": "changed", "before": 2, "after": 3},
    ]


def test_list_items_of_equal_lists_are_compared_one_by_one() -> None:
    found = changes({"cases": [{"q": "a"}, {"q": "b"}]}, {"cases": [{"q": "a"}, {"q": "x"}]})
    assert [(c.path, c.before, c.after) for c in found] == [("cases[1].q", "b", "x")]


def test_equal_flows_have_no_changes_and_no_text() -> None:
    flow = {"name": "infoline", "nodes": {"a": {"type": "hangup"}}}
    assert changes(flow, dict(flow)) == []
    assert unified(flow, dict(flow), "version 1", "version 2") == ""


def test_the_text_diff_reads_like_the_yaml_file() -> None:
    text = unified({"a": "ž", "b": 1}, {"a": "ž", "b": 2}, "version 1", "draft")
    assert text.splitlines()[:2] == ["--- version 1", "+++ draft"]
    assert "-b: 1" in text and "+b: 2" in text and " a: ž" in text


def test_each_problem_is_put_at_its_node() -> None:
    assert problem_items(
        ["nodes.main_menu.options.3: goes to unknown node 'x'", "queues[0]: bad", "no colon"]
    ) == [
        {
            "at": "nodes.main_menu.options.3",
            "node": "main_menu",
            "message": "goes to unknown node 'x'",
        },
        {"at": "queues[0]", "node": None, "message": "bad"},
        {"at": "", "node": None, "message": "no colon"},
    ]
