"""Fixtures for every optimizer test."""

from __future__ import annotations

import pytest

from optimizer import inputs


@pytest.fixture(autouse=True)
def _no_kept_fits():
    """Forecast fits are kept per process (`inputs.FITS`): each test starts and ends without any."""
    inputs.FITS.clear()
    yield
    inputs.FITS.clear()
