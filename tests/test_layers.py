"""The layer contracts of pyproject.toml ([tool.importlinter], run by `make lint`): they cover every project app,
and they break on the imports they forbid (an upward import, Django or an app in the pure engine or capacity)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _project_apps() -> set[str]:
    return {app.split(".")[0] for app in settings.INSTALLED_APPS if (ROOT / app.split(".")[0]).is_dir()}


def _layer_modules() -> set[str]:
    layers = next(c for c in CONFIG["contracts"] if c["id"] == "layers")["layers"]
    return {tail.strip().strip("()") for layer in layers for tail in layer.replace(":", "|").split("|")}


def test_every_project_app_is_a_root_package_in_a_layer():
    apps = _project_apps() | {"energyarb"}
    assert apps >= {"core", "sites", "sla", "optimizer", "mara"}
    missing_root = apps - set(CONFIG["root_packages"])
    missing_layer = apps - _layer_modules()
    assert not missing_root, f"add {sorted(missing_root)} to [tool.importlinter] root_packages in pyproject.toml"
    assert not missing_layer, f"add {sorted(missing_layer)} to the 'layers' contract in pyproject.toml"


def _lint_copy_with(tmp_path: Path, module: str, line: str) -> subprocess.CompletedProcess:
    for package in CONFIG["root_packages"]:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "templates"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with (tmp_path / module).open("a") as handle:
        handle.write(f"\n{line}\n")
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("sites/units.py", "from optimizer.engine import mara", "Apps import only the layers below them"),
        ("core/db.py", "import sla.models", "Apps import only the layers below them"),
        ("sla/models.py", "from mara import prices", "Apps import only the layers below them"),
        ("optimizer/engine/problem.py", "import django.db", "The optimization engine imports no Django"),
        ("optimizer/engine/solve.py", "from optimizer import forecast", "The optimization engine imports no Django"),
        ("sla/capacity.py", "from sla import choices", "SLA capacity arithmetic imports no Django"),
        ("sla/capacity.py", "from core import db", "SLA capacity arithmetic imports no Django"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(tmp_path, module, line, contract):
    result = _lint_copy_with(tmp_path, module, line)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{contract}" in result.stdout and "BROKEN" in result.stdout


def test_the_project_as_it_is_keeps_every_contract(tmp_path):
    result = _lint_copy_with(tmp_path, "core/__init__.py", "")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(CONFIG['contracts'])} kept, 0 broken." in result.stdout
