"""The package layers, checked on the source: every import of every product module (``import
x``, ``from x import y``, relative imports, imports under ``if TYPE_CHECKING``) is read with
``ast`` and held against the order

    dialplan, surveys  <  core  <  models  <  usecases
      <  ari_app | agi | mail | sms | letters | viber | meta  <  web  <  centrala

A package may import its own layer's package and lower ones, never a higher one; ``ari_app``,
``agi``, ``mail``, ``sms``, ``letters``, ``viber`` and ``meta`` (the same layer) never import
each other; ``web`` takes the Stasis apps as injected objects (its own Protocols), so it
imports neither ``ari_app`` nor ``agi``. The pure packages (``dialplan``, ``surveys``,
``core``) import no adapter package and no I/O library.
Each violation is reported as ``file:line imports X``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

LAYER: dict[str, int] = {
    "dialplan": 0,
    "surveys": 0,
    "core": 1,
    "models": 2,
    "usecases": 3,
    "ari_app": 4,
    "agi": 4,
    "mail": 4,
    "sms": 4,
    "letters": 4,
    "viber": 4,
    "meta": 4,
    "web": 5,
    "centrala": 6,
}
PURE = frozenset({"dialplan", "surveys", "core"})
# What the pure packages may never import: the adapters' libraries and anything doing I/O.
IO_LIBRARIES = frozenset(
    {
        "aiohttp",
        "aiohttp_jinja2",
        "aiosmtplib",
        "aiosmpplib",
        "aiosqlite",
        "alembic",
        "argon2",
        "asyncio",
        "asyncpg",
        "click",
        "http",
        "itsdangerous",
        "jinja2",
        "multiprocessing",
        "pydantic_settings",
        "requests",
        "selectors",
        "shutil",
        "socket",
        "sqlalchemy",
        "sqlite3",
        "ssl",
        "structlog",
        "subprocess",
        "threading",
        "urllib",
        "websockets",
    }
)
# Packages a package may not import even though they are lower (injected instead).
NEVER: dict[str, frozenset[str]] = {"web": frozenset({"ari_app", "agi"})}


def product_files(root: Path = ROOT) -> Iterator[tuple[str, Path]]:
    for package in LAYER:
        for path in sorted((root / package).rglob("*.py")):
            if "__pycache__" not in path.parts:
                yield package, path


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """(line, absolute module) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
                if node.module is None:  # from . import x: x is a module of that package
                    for alias in node.names:
                        yield node.lineno, f"{module}.{alias.name}"
                    continue
            else:
                module = node.module or ""
            yield node.lineno, module


def violation(package: str, module: str) -> str | None:
    """Why ``package`` may not import ``module`` (None: it may)."""
    top = module.split(".")[0]
    if package in PURE and top in IO_LIBRARIES:
        return "an I/O library"
    if top not in LAYER or top == package:
        return None
    if package in PURE and top not in PURE:
        return "an adapter package"
    if top in NEVER.get(package, frozenset()):
        return "an adapter injected into it"
    if LAYER[top] > LAYER[package]:
        return "a higher layer"
    if LAYER[top] == LAYER[package]:
        return "a package of the same layer"
    return None


def violations(root: Path = ROOT) -> list[str]:
    found = []
    for package, path in product_files(root):
        for line, module in sorted(imports(path, root)):
            why = violation(package, module)
            if why is not None:
                found.append(f"{path.relative_to(root)}:{line} imports {module} ({why})")
    return found


def test_every_package_imports_only_lower_layers() -> None:
    found = violations()
    print("\n".join(found))
    assert not found, "layer violations:\n" + "\n".join(found)


def test_the_check_sees_a_violating_import(tmp_path: Path) -> None:
    """The walker itself: a relative import, a TYPE_CHECKING import and an I/O library in
    ``core`` are all caught, and a lower-layer import is not."""
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "__init__.py").write_text("")
    (tmp_path / "core" / "bad.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "import asyncio\n"
        "from dialplan.model import Flow\n"
        "if TYPE_CHECKING:\n"
        "    from models.tables import Call\n"
        "from ..web import http\n"
    )
    for package in LAYER:
        (tmp_path / package).mkdir(exist_ok=True)
    found = violations(tmp_path)
    assert found == [
        "core/bad.py:2 imports asyncio (an I/O library)",
        "core/bad.py:5 imports models.tables (an adapter package)",
        "core/bad.py:6 imports web (an adapter package)",
    ]


def test_every_package_says_what_it_holds_and_may_import() -> None:
    for package in LAYER:
        doc = ast.get_docstring(ast.parse((ROOT / package / "__init__.py").read_text()))
        assert doc and "import" in doc, f"{package}/__init__.py: no docstring naming its imports"
