"""No function of the project's code is longer than MAX_FUNCTION_LINES (tests and migrations aside): a longer one is
split into named steps a reader can follow (README, "Architecture")."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from django.conf import settings

ROOT = Path(settings.BASE_DIR)
APPS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"]
SCRIPTS = ("bench", "deploy")  # project code outside the apps: benchmarks, deployment checks
MAX_FUNCTION_LINES = 80  # from `def` (decorators aside) to the last line of the body, docstring included


def long_functions(tree: ast.AST, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int, int]]:
    """``(name, first line, lines)`` of every function or method (nested ones too) longer than ``limit`` lines."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines > limit:
                found.append((node.name, node.lineno, lines))
    return sorted(found, key=lambda f: f[1])


def project_modules() -> list[Path]:
    return sorted(
        path
        for top in (*APPS, *SCRIPTS)
        for path in (ROOT / top).rglob("*.py")
        if "migrations" not in path.parts and "node_modules" not in path.parts
    )


def test_the_scanner_measures_functions_from_def_to_their_last_line():
    body = "\n".join(f"    x{i} = {i}" for i in range(80))
    source = f"@decorator\ndef long():\n{body}\n\n\nclass A:\n    async def short(self):\n        return 1\n"
    assert long_functions(ast.parse(source)) == [("long", 2, 81)]
    assert long_functions(ast.parse(source), limit=81) == []
    nested = "def outer():\n    def inner():\n" + "\n".join(f"        y{i} = {i}" for i in range(85)) + "\n"
    assert [name for name, _, _ in long_functions(ast.parse(nested))] == ["outer", "inner"]


def test_the_scan_covers_every_app_and_the_benchmarks():
    modules = {path.relative_to(ROOT).parts[0] for path in project_modules()}
    assert set(APPS) | {"bench"} <= modules
    assert not any("migrations" in path.parts for path in project_modules())


def test_no_function_of_the_project_is_longer_than_the_limit():
    found = [
        f"{path.relative_to(ROOT)}:{line} {name} ({lines} lines)"
        for path in project_modules()
        for name, line, lines in long_functions(ast.parse(path.read_text(), str(path)))
    ]
    assert not found, f"functions over {MAX_FUNCTION_LINES} lines (split them into named steps): " + "; ".join(found)
