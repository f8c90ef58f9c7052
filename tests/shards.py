"""Splits the slow test files (those of the real PBX, `serve`, the browser and the faults) into
shards of about equal duration, for ``scripts/test`` to run at once, each on a host of its own.

    python -m tests.shards split N FILE...      one line per shard: its files
    python -m tests.shards record JUNIT.xml...  rewrites tests/durations.json from the runs

The durations are seconds per file as a run measured them (setup, call and teardown of every
test, from pytest's JUnit report). A file with no figure yet counts as the median file, so a new
test module needs no edit here; ``scripts/test`` records the figures after each whole run, and a
commit of the changed file keeps the split balanced on the next machine."""

from __future__ import annotations

import json
import statistics
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DURATIONS = REPO / "tests" / "durations.json"


def load() -> dict[str, float]:
    try:
        return {str(k): float(v) for k, v in json.loads(DURATIONS.read_text()).items()}
    except FileNotFoundError:
        return {}


def split(files: list[str], shards: int, durations: dict[str, float]) -> list[list[str]]:
    """Longest first, each to the shard with the least so far: the longest shard is within 4/3
    of the best split's."""
    default = statistics.median(durations.values()) if durations else 1.0
    loads = [0.0] * shards
    out: list[list[str]] = [[] for _ in range(shards)]
    for f in sorted(files, key=lambda f: (-durations.get(f, default), f)):
        k = loads.index(min(loads))
        out[k].append(f)
        loads[k] += durations.get(f, default)
    return [sorted(s) for s in out]


def measured(reports: list[Path]) -> dict[str, float]:
    """Seconds per test file from JUnit reports (``classname`` is the dotted module path)."""
    per_file: dict[str, float] = defaultdict(float)
    for report in reports:
        for case in ET.parse(report).iter("testcase"):
            module = case.get("classname", "")
            parts = module.split(".")
            # The class part of ``tests.x.test_y.TestZ`` is not a file.
            while parts and not parts[-1].startswith("test_"):
                parts.pop()
            if parts:
                per_file["/".join(parts) + ".py"] += float(case.get("time", 0))
    return dict(per_file)


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "split":
        for shard in split(argv[2:], int(argv[1]), load()):
            print(" ".join(shard))
        return 0
    if len(argv) >= 1 and argv[0] == "record":
        figures = {**load(), **measured([Path(a) for a in argv[1:]])}
        existing = {f: round(s, 1) for f, s in sorted(figures.items()) if (REPO / f).exists()}
        DURATIONS.write_text(json.dumps(existing, indent=1) + "\n")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
