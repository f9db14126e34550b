"""mypy's settings in pyproject.toml ([tool.mypy], run by `make lint`) keep every project module checked: nothing
silences a module's errors (`ignore_errors`, a baseline list, skipped imports, disabled codes, file-level
`# mypy:` comments), untyped third-party libraries are named one by one, and a `# type: ignore` names its code."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from django.conf import settings

ROOT = Path(settings.BASE_DIR)
TOOL = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]
MYPY = TOOL["mypy"]
OVERRIDES = MYPY.get("overrides", [])
PROJECT_PACKAGES = set(TOOL["importlinter"]["root_packages"])
STRICT_FLAGS = ("disallow_untyped_defs", "disallow_incomplete_defs", "disallow_any_generics", "warn_return_any")
SILENCING = (
    "ignore_errors",
    "disable_error_code",
    "follow_imports",
    "follow_untyped_imports",
    "ignore_missing_imports",
)
FILE_LEVEL_MYPY_COMMENT = re.compile(r"^#\s*mypy:", re.MULTILINE)
IGNORE_WITHOUT_CODE = re.compile(r"#\s*type:\s*ignore(?!\[)")


def _modules(override: dict) -> list[str]:
    module = override["module"]
    return [module] if isinstance(module, str) else list(module)


def _package(pattern: str) -> str:
    return pattern.split(".")[0]


def _project_sources() -> list[Path]:
    return [
        path
        for package in sorted(PROJECT_PACKAGES)
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    ]


def test_no_module_is_kept_off_the_check():
    """No `ignore_errors` anywhere (a baseline of modules whose errors are not reported included), and nothing
    global that hides errors: disabled codes, skipped or silenced imports, missing imports ignored for all."""
    for override in OVERRIDES:
        assert not override.get("ignore_errors"), f"ignore_errors on {_modules(override)}"
        assert "disable_error_code" not in override, f"disable_error_code on {_modules(override)}"
        assert override.get("follow_imports", "normal") == "normal", f"follow_imports on {_modules(override)}"
    assert not any(key in MYPY for key in SILENCING), f"[tool.mypy] sets one of {SILENCING}"


def test_only_third_party_libraries_are_typed_as_any():
    """`ignore_missing_imports` per library that ships no types, never on a project package."""
    untyped = [pattern for o in OVERRIDES if o.get("ignore_missing_imports") for pattern in _modules(o)]
    assert untyped, "the untyped libraries are listed in one override"
    project = sorted(p for p in untyped if _package(p) in PROJECT_PACKAGES)
    assert not project, f"project modules are not third-party libraries: {project}"
    for override in OVERRIDES:
        if override.get("ignore_missing_imports"):
            assert set(override) == {"module", "ignore_missing_imports"}, "that override only lists libraries"


def test_every_project_package_is_checked_and_the_core_is_strict():
    assert set(MYPY["files"]) >= PROJECT_PACKAGES, "mypy's files miss a root package of [tool.importlinter]"
    assert MYPY["warn_unused_ignores"] is True
    assert "ignore-without-code" in MYPY["enable_error_code"]
    strict = next(o for o in OVERRIDES if "sla.capacity" in _modules(o))
    assert {"optimizer.engine", "optimizer.engine.*", "sla.capacity"} <= set(_modules(strict))
    assert all(strict.get(flag) is True for flag in STRICT_FLAGS)


def test_no_source_file_silences_mypy_itself():
    """No `# mypy: ignore-errors` (or any file-level mypy setting) and no `# type: ignore` without its code."""
    sources = _project_sources()
    assert len(sources) > 100
    file_level = [str(p.relative_to(ROOT)) for p in sources if FILE_LEVEL_MYPY_COMMENT.search(p.read_text())]
    bare = [str(p.relative_to(ROOT)) for p in sources if IGNORE_WITHOUT_CODE.search(p.read_text())]
    assert not file_level, f"file-level mypy comments in {file_level}"
    assert not bare, f"a `# type: ignore` without [code] in {bare}"
