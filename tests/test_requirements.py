"""Every package in requirements*.txt is pinned exactly (==), so an image or a virtualenv built later installs what
the suite ran against (issue #14: some were ranges); requirements.lock pins the whole resolved set (the transitive
dependencies too), and the virtualenv running the suite holds exactly that set. The deployment validators' own
virtualenv (.venv-deploy, make deploy-lint) is locked the same way by requirements-deploy.lock."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
EXACT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?==[A-Za-z0-9.+!-]+$")


@pytest.mark.parametrize("name", ["requirements.txt", "requirements-dev.txt", "requirements-deploy.txt"])
def test_every_requirement_is_pinned_exactly(name):
    lines = [line.split("#", 1)[0].strip() for line in (ROOT / name).read_text().splitlines()]
    packages = [line for line in lines if line and not line.startswith("-r ")]

    assert packages, f"{name} lists no package"
    assert [line for line in packages if not EXACT.match(line)] == []


LOCK = ROOT / "requirements.lock"
DEPLOY_LOCK = ROOT / "requirements-deploy.lock"
DEPLOY_VENV = ROOT / ".venv-deploy"
# The oldest Python the lock must install on: Debian bookworm's python3, the base of the local image
# (deploy/docker/base-images.sh) and of Dockerfile's default BASE_IMAGE line (Python 3.11 on bookworm).
OLDEST_PYTHON = Version("3.11.2")
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


@pytest.mark.parametrize("lock", [LOCK, DEPLOY_LOCK], ids=lambda path: path.name)
def test_the_lock_pins_every_package_exactly_once(lock):
    lines = [line.split("#", 1)[0].strip() for line in lock.read_text().splitlines()]
    packages = [line for line in lines if line]

    assert packages, f"{lock.name} locks no package"
    assert [line for line in packages if not EXACT.match(line) or "[" in line] == []
    names = [canonicalize_name(line.split("==")[0]) for line in packages]
    assert sorted(name for name in set(names) if names.count(name) > 1) == []


@pytest.mark.parametrize(
    ("name", "lock"),
    [("requirements.txt", LOCK), ("requirements-dev.txt", LOCK), ("requirements-deploy.txt", DEPLOY_LOCK)],
)
def test_every_direct_pin_agrees_with_the_lock(name, lock):
    locked = _pins(lock)

    assert {package: version for package, version in _pins(ROOT / name).items() if locked.get(package) != version} == {}


def _mismatches(installed: dict[str, str], locked: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(installed but not locked at that version, locked but not installed at that version)."""
    installed = {name: version for name, version in installed.items() if name not in NOT_LOCKED}
    return (
        {name: version for name, version in installed.items() if locked.get(name) != version},
        {name: version for name, version in locked.items() if installed.get(name) != version},
    )


def _installed(path: list[str] | None = None) -> dict[str, str]:
    distributions = metadata.distributions(path=path) if path is not None else metadata.distributions()
    return {canonicalize_name(dist.metadata["Name"]): dist.version for dist in distributions}


def test_the_virtualenv_holds_exactly_the_locked_set():
    """Every package installed where the suite runs is locked at the version installed, and every locked package is
    installed: a package added with pip but not to the lock (or a stale venv, or a stale lock) fails here."""
    assert _mismatches(_installed(), _pins(LOCK)) == ({}, {})


def test_the_deploy_virtualenv_holds_exactly_the_deploy_locked_set():
    """.venv-deploy (built by make test and make deploy-lint from requirements-deploy.txt constrained by
    requirements-deploy.lock) holds exactly the deploy lock; skipped only where pytest runs without make test."""
    site_packages = sorted(DEPLOY_VENV.glob("lib/python*/site-packages"))
    if not site_packages:
        pytest.skip(".venv-deploy is not built here (make test and make deploy-lint build it)")

    assert _mismatches(_installed([str(path) for path in site_packages]), _pins(DEPLOY_LOCK)) == ({}, {})


def test_the_deploy_virtualenv_is_installed_with_the_deploy_lock():
    """make deploy-lint's virtualenv rule installs the direct pins constrained by the lock, and is rebuilt when the
    lock changes."""
    makefile = (ROOT / "Makefile").read_text()
    rule = makefile[makefile.index(".venv-deploy/.installed:") :].split("\n\n", 1)[0]

    assert "requirements-deploy.lock" in rule.splitlines()[0]
    assert "-r requirements-deploy.txt -c requirements-deploy.lock" in rule


def test_every_locked_package_installs_on_the_images_python():
    """Each package of the lock, as installed here, declares a Requires-Python that the image's Python satisfies:
    a lock made on a newer 3.11 (this machine's) must not pin a release the image cannot install (soupsieve 4.1.4
    needs >= 3.11.5 and broke the image build)."""
    locked = _pins(LOCK)
    too_new = {}
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        requires = dist.metadata.get("Requires-Python")
        if name in locked and requires and not SpecifierSet(requires).contains(OLDEST_PYTHON, prereleases=True):
            too_new[name] = f"{dist.version} requires Python {requires}"

    assert too_new == {}
