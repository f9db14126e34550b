"""Every package in requirements*.txt is pinned exactly (==), so an image or a virtualenv built later installs what
the suite ran against (issue #14: some were ranges)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXACT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?==[A-Za-z0-9.+!-]+$")


@pytest.mark.parametrize("name", ["requirements.txt", "requirements-dev.txt", "requirements-deploy.txt"])
def test_every_requirement_is_pinned_exactly(name):
    lines = [line.split("#", 1)[0].strip() for line in (ROOT / name).read_text().splitlines()]
    packages = [line for line in lines if line and not line.startswith("-r ")]

    assert packages, f"{name} lists no package"
    assert [line for line in packages if not EXACT.match(line)] == []
