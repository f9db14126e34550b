"""Fuzzing support: the `fuzz` marker, a case counter shared by the fuzz tests, and the run's closing figures.

`make fuzz` runs tests/fuzz alone (`make test` deselects the marker). The session fails when fewer than
MIN_CASES cases were generated, so a schema change that silently shrinks the fuzz is noticed.
"""

from __future__ import annotations

from collections import Counter

import pytest

MIN_CASES = 1000
STATS = pytest.StashKey[Counter]()


def pytest_configure(config):
    config.addinivalue_line("markers", "fuzz: schemathesis against /api/schema/ (make fuzz)")
    config.stash[STATS] = Counter()


@pytest.fixture(scope="session")
def fuzz_stats(request) -> Counter:
    return request.config.stash[STATS]


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    stats = config.stash.get(STATS, Counter())
    if not stats["cases"]:
        return
    terminalreporter.write_sep("=", "schemathesis")
    terminalreporter.write_line(
        f"cases fuzzed: {stats['cases']} ({stats['negative']} with invalid input) over {stats['operations']} "
        f"operation runs; 5xx answers: {stats['5xx']}; by role: staff {stats['role:staff']}, "
        f"customer {stats['role:customer']}"
    )
    for operation in ("POST /api/sla/quotes/", "POST /api/contracts/"):
        reached, refused = stats[f"{operation} 2xx"], stats[f"{operation} refused"]
        terminalreporter.write_line(f"{operation}: {reached} cases answered 2xx, {refused} refused (4xx)")
    if stats["cases"] < MIN_CASES:
        terminalreporter.write_line(f"FAIL: fewer than {MIN_CASES} cases were generated.")


def pytest_sessionfinish(session, exitstatus):
    stats = session.config.stash.get(STATS, Counter())
    if stats["operations"] and stats["cases"] < MIN_CASES and exitstatus == 0:
        session.exitstatus = 1
