"""Every package in requirements*.txt is pinned exactly (==), so an image or a virtualenv built later installs what
the suite ran against (issue #14: some were ranges); requirements.lock pins the whole resolved set (the transitive
dependencies too), and the virtualenv running the suite holds exactly that set."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
EXACT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?==[A-Za-z0-9.+!-]+$")


@pytest.mark.parametrize("name", ["requirements.txt", "requirements-dev.txt", "requirements-deploy.txt"])
def test_every_requirement_is_pinned_exactly(name):
    lines = [line.split("#", 1)[0].strip() for line in (ROOT / name).read_text().splitlines()]
    packages = [line for line in lines if line and not line.startswith("-r ")]

    assert packages, f"{name} lists no package"
    assert [line for line in packages if not EXACT.match(line)] == []


LOCK = ROOT / "requirements.lock"
# Installed into every virtualenv by venv itself, and left out of the lock by pip freeze.
NOT_LOCKED = {"pip", "setuptools", "wheel"}


def _pins(path: Path) -> dict[str, str]:
    """{normalized name: version} of the exact pins of a requirements file, following its `-r` includes."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            pins.update(_pins(path.parent / line[3:].strip()))
        elif line:
            requirement = Requirement(line)
            pins[canonicalize_name(requirement.name)] = str(requirement.specifier).removeprefix("==")
    return pins


def test_the_lock_pins_every_package_exactly_once():
    lines = [line.split("#", 1)[0].strip() for line in LOCK.read_text().splitlines()]
    packages = [line for line in lines if line]

    assert [line for line in packages if not EXACT.match(line) or "[" in line] == []
    names = [canonicalize_name(line.split("==")[0]) for line in packages]
    assert sorted(name for name in set(names) if names.count(name) > 1) == []


@pytest.mark.parametrize("name", ["requirements.txt", "requirements-dev.txt"])
def test_every_direct_pin_agrees_with_the_lock(name):
    locked = _pins(LOCK)

    assert {package: version for package, version in _pins(ROOT / name).items() if locked.get(package) != version} == {}


def test_the_virtualenv_holds_exactly_the_locked_set():
    """Every package installed where the suite runs is locked at the version installed, and every locked package is
    installed: a package added with pip but not to the lock (or a stale venv, or a stale lock) fails here."""
    installed = {
        canonicalize_name(dist.metadata["Name"]): dist.version
        for dist in metadata.distributions()
        if canonicalize_name(dist.metadata["Name"]) not in NOT_LOCKED
    }
    locked = _pins(LOCK)

    assert {name: version for name, version in installed.items() if locked.get(name) != version} == {}
    assert {name: version for name, version in locked.items() if installed.get(name) != version} == {}
