"""core/flowtraffic.py: callers per node now, and today's calls that reached each node and
hung up there, from the calls' IVR paths."""

from __future__ import annotations

from core.flowtraffic import nodes_of, traffic

NODES = {"notice", "main_menu", "information", "operator"}


def test_a_path_names_its_nodes_not_its_keys_or_gaps() -> None:
    path = ["notice", "main_menu", "main_menu:1", "information", "…3 skipped…", "main_menu"]
    assert nodes_of(path, NODES) == ["notice", "main_menu", "information", "main_menu"]


def test_callers_are_counted_where_they_are_reached_and_left() -> None:
    counted = traffic(
        NODES,
        ["main_menu", None, "main_menu", "gone_node"],
        [
            (
                ["notice", "main_menu", "main_menu:1", "information", "main_menu"],
                "abandoned_in_ivr",
            ),
            (["notice", "main_menu", "main_menu:0", "operator"], "answered"),
            (["notice"], "abandoned_in_ivr"),
            ([], "abandoned_in_ivr"),
        ],
    )
    view = counted.to_json(["notice", "main_menu", "information", "operator"])
    assert view == {
        "notice": {"now": 0, "reached_today": 3, "left_today": 1},
        "main_menu": {"now": 2, "reached_today": 2, "left_today": 1},
        "information": {"now": 0, "reached_today": 1, "left_today": 0},
        "operator": {"now": 0, "reached_today": 1, "left_today": 0},
    }
