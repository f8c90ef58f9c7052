"""Hostile definitions (issue 10), through the real CLI in a subprocess: each is refused with
one problem line and exit code 2, no traceback, nothing stored; a legal long chain still
passes. The alias bombs run under a 1 GB address-space limit: built, they would need
gigabytes, so only a refusal before building exits 2."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from copy import deepcopy
from pathlib import Path
from typing import Any

import yaml

from dialplan.model import MAX_NODES, MAX_STEPS_WITHOUT_INPUT

ROOT = Path(__file__).parents[2]
FLOW: dict[str, Any] = yaml.safe_load((ROOT / "dialplan" / "infoline.yaml").read_text())
SURVEY: dict[str, Any] = yaml.safe_load((ROOT / "surveys" / "nps.yaml").read_text())
ADDRESS_SPACE = 1 << 30


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def centrala(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CENTRALA_DATA_DIR": str(tmp / "var"),
        "CENTRALA_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'var' / 'centrala.db'}",
    }
    return subprocess.run(
        [sys.executable, "-m", "centrala.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
        preexec_fn=_limit_memory,
    )


def refused(proc: subprocess.CompletedProcess[str], path: Path) -> list[str]:
    """The problem lines of a refusal (exit 2, every line naming the file, no traceback)."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("note:")]
    assert lines and all(line.startswith(f"{path}: ") for line in lines), proc.stderr
    return [line.removeprefix(f"{path}: ") for line in lines]


def chain_flow(length: int) -> dict[str, Any]:
    data = deepcopy(FLOW)
    for i in range(length):
        nxt = f"c{i + 1}" if i + 1 < length else data["start"]
        data["nodes"][f"c{i}"] = {"type": "play", "prompt": "welcome", "next": nxt}
    data["start"] = "c0"
    return data


def write(tmp: Path, name: str, data: dict[str, Any] | str) -> Path:
    path = tmp / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, allow_unicode=True))
    return path


def bomb(document: dict[str, Any], field: str) -> str:
    """``document`` with a billion-laughs alias bomb (10**9 strings once expanded) as
    ``field``, which takes any value."""
    lines = ['x0: &x0 "laugh"']
    for i in range(1, 10):
        lines.append(f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 10)}]")
    text = yaml.safe_dump({k: v for k, v in document.items() if k != field}, allow_unicode=True)
    bombs = "\n".join(f"  {line}" for line in lines)
    return f"{text}{field}:\n{bombs}\n"


def test_flow_with_a_2000_node_chain_is_refused_by_check_and_apply(tmp_path: Path) -> None:
    path = write(tmp_path, "chain.yaml", chain_flow(2000))
    nodes = 2000 + len(FLOW["nodes"])
    for command in ("check", "apply"):
        problems = refused(centrala(tmp_path, "dialplan", command, str(path)), path)
        assert problems == [f"nodes: {nodes:,} nodes, at most {MAX_NODES}"]
    assert not (tmp_path / "var" / "centrala.db").exists()  # apply stored nothing


def test_flow_whose_chain_is_walked_too_long_without_input_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "long.yaml", chain_flow(300))
    problems = refused(centrala(tmp_path, "dialplan", "check", str(path)), path)
    assert problems == [
        "nodes.c0: a caller walks 304 play/branch/language steps from here without waiting "
        f"for a key, at most {MAX_STEPS_WITHOUT_INPUT} (put a menu in the chain)"
    ]


def test_flow_with_a_legal_150_node_chain_passes_check(tmp_path: Path) -> None:
    # Walked without recursion: tests/unit/test_definition_limits.py walks it on a short stack.
    path = write(tmp_path, "ok.yaml", chain_flow(150))
    proc = centrala(tmp_path, "dialplan", "check", str(path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"OK: flow infoline, {150 + len(FLOW['nodes'])} nodes")


def test_flow_yaml_alias_bomb_is_refused_before_it_is_built(tmp_path: Path) -> None:
    path = write(tmp_path, "bomb.yaml", bomb(FLOW, "description"))
    problems = refused(centrala(tmp_path, "dialplan", "check", str(path)), path)
    assert problems == [
        f"{path}: expands to more than 2,000,000 characters once its aliases (*name) are "
        "copied out (or an alias contains itself)"
    ]


def test_survey_yaml_alias_bomb_is_refused_before_it_is_built(tmp_path: Path) -> None:
    path = write(tmp_path, "bomb.yaml", bomb(SURVEY, "description"))
    problems = refused(centrala(tmp_path, "survey", "check", str(path)), path)
    assert len(problems) == 1 and "once its aliases (*name) are copied out" in problems[0]


def test_survey_with_10000_questions_is_refused_cleanly_by_the_cli(tmp_path: Path) -> None:
    data = deepcopy(SURVEY)
    data["questions"] = {
        f"q{i}": {
            "type": "yes_no",
            "prompt": "may_call_back",
            "next": f"q{i + 1}" if i + 1 < 10_000 else "end",
        }
        for i in range(10_000)
    }
    data["start"] = "q0"
    path = write(tmp_path, "huge.yaml", data)
    for command in ("check", "apply"):
        problems = refused(centrala(tmp_path, "survey", command, str(path)), path)
        assert problems == ["questions: 10,000 questions, at most 100"]
    assert not (tmp_path / "var" / "centrala.db").exists()
