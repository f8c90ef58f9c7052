"""No product module calls ``asyncio.wait_for``: on Python 3.11 it swallows a cancellation
that arrives just as the awaited thing finishes (it returns the result instead), so a loop
told to stop goes on and a `serve` told to stop (SIGTERM) hangs. ``asyncio.timeout`` tells
the two apart. Seen in CI as a `serve` sending SMS that never exited."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.unit.test_layers import LAYER, ROOT


def wait_for_calls(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(), str(path))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr == "wait_for"
        and isinstance(node.value, ast.Name)
        and node.value.id == "asyncio"
    ]


def test_no_product_module_calls_asyncio_wait_for() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for package in LAYER
        for path in sorted((ROOT / package).rglob("*.py"))
        for line in wait_for_calls(path)
    ]
    assert found == [], f"asyncio.wait_for in {found}: use `async with asyncio.timeout(...)`"


def test_the_check_sees_a_call(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import asyncio\n\nasync def f(x):\n    await asyncio.wait_for(x, 1)\n")
    assert wait_for_calls(module) == [4]
