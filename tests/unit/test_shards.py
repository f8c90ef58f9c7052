"""The split of the slow test files into shards (tests/shards.py), as scripts/test runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.shards import REPO, measured, split


def test_the_longest_files_are_spread_and_the_shards_come_out_even() -> None:
    durations = {"a": 100.0, "b": 60.0, "c": 50.0, "d": 40.0, "e": 10.0}
    shards = split(list(durations), 2, durations)
    loads = sorted(sum(durations[f] for f in s) for s in shards)
    assert loads == [120.0, 140.0]  # longest first, each to the lighter shard: a+d, b+c+e
    assert max(loads) <= 4 / 3 * sum(durations.values()) / 2  # the method's bound
    assert not any({"a", "b"} <= set(s) for s in shards)
    assert sorted(f for s in shards for f in s) == sorted(durations)  # each file once


def test_a_file_with_no_figure_counts_as_the_median_one() -> None:
    durations = {"a": 10.0, "b": 20.0, "c": 30.0}
    shards = split(["a", "b", "c", "new"], 2, durations)
    # "new" counts 20 s: 30 + 10 against 20 + 20.
    assert sorted(sorted(s) for s in shards) == [["a", "c"], ["b", "new"]]


def test_more_shards_than_files_leaves_some_empty() -> None:
    assert sorted(split(["a"], 3, {}), key=len) == [[], [], ["a"]]


def test_junit_reports_give_seconds_per_file(tmp_path: Path) -> None:
    report = tmp_path / "r.xml"
    report.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.sip.test_real_lines" name="t1" time="1.5"/>'
        '<testcase classname="tests.sip.test_real_lines" name="t2" time="2.0"/>'
        '<testcase classname="tests.faults.test_x.TestGroup" name="t3" time="4.25"/>'
        "</testsuite></testsuites>"
    )
    assert measured([report]) == {
        "tests/sip/test_real_lines.py": 3.5,
        "tests/faults/test_x.py": 4.25,
    }


def test_the_split_command_prints_one_line_per_shard() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.shards", "split", "2",
         "tests/bench/test_bench_commands.py", "tests/sip/test_real_lines.py",
         "tests/faults/test_database_down.py"],
        cwd=REPO, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    # The benchmarks' file is the longest by far (tests/durations.json): alone in its shard.
    assert "tests/bench/test_bench_commands.py" in lines
