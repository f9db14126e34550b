"""App code uses the ORM through its public API: no write to a QuerySet's or an instance's private attributes,
which a Django upgrade changes without notice (tests and migrations aside)."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from django.conf import settings

ROOT = Path(settings.BASE_DIR)
APPS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"]  # every app
PRIVATE = {"_result_cache", "_prefetch_done", "_prefetched_objects_cache", "_state", "_known_related_objects"}


def _writes_to_private_attributes(tree: ast.AST) -> list[int]:
    """Lines assigning `x._state...`, `x._result_cache`, ... or calling setattr(x, "_state", ...)."""

    def private(node: ast.AST) -> bool:
        while isinstance(node, ast.Attribute | ast.Subscript):
            if isinstance(node, ast.Attribute) and node.attr in PRIVATE:
                return True
            node = node.value
        return False

    lines = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) in {"setattr", "delattr"}:
            name = node.args[1] if len(node.args) > 1 else None
            if isinstance(name, ast.Constant) and name.value in PRIVATE:
                lines.append(node.lineno)
        flat = [t for target in targets for t in (target.elts if isinstance(target, ast.Tuple) else [target])]
        lines += [node.lineno for target in flat if private(target)]
    return lines


def test_the_scanner_finds_the_writes_it_forbids():
    source = "qs._result_cache = rows\nobj._state.adding = True\na, b._prefetch_done = 1, 2\nsetattr(o, '_state', s)\n"
    assert _writes_to_private_attributes(ast.parse(source)) == [1, 2, 3, 4]
    assert _writes_to_private_attributes(ast.parse("x = obj._state.db\nobj.state = 1\n")) == []


def test_app_code_writes_no_private_orm_attribute():
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for app in APPS
        for path in sorted((ROOT / app).rglob("*.py"))
        if "migrations" not in path.parts
        for line in _writes_to_private_attributes(ast.parse(path.read_text(), str(path)))
    ]
    assert not found, f"writes to private ORM attributes: {found}"
