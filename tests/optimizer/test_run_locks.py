"""A run does not stall customers: pricing moves (engine re-solves) happens before the transaction that writes the
plan, so no lock a booking waits on is held while the engine works (issue 13)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.db import OperationalError, connection, connections

from optimizer import migration_pricing
from optimizer.choices import RunStatus, RunTrigger
from optimizer.services import optimize_now
from sites.services import refresh_market_prices, refresh_weather
from sla.models import Customer, Tier
from sla.services import CapacityRequest, create_contract
from tests.factories import T0

NOW = T0 + timedelta(hours=12, minutes=2)


def lockable(table: str) -> bool:
    """Whether another session can lock every row of ``table`` at once (NOWAIT: fails if any row is locked)."""
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute(f"SELECT id FROM {table} FOR UPDATE NOWAIT")  # autocommit: released at once
        return True
    except OperationalError:
        return False
    finally:
        other.close()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="probes row locks with FOR UPDATE NOWAIT (PostgreSQL)")
@pytest.mark.django_db(transaction=True)
def test_moves_are_priced_outside_the_transaction_holding_no_site_or_inventory_lock(monkeypatch):
    call_command("seed_sites", stdout=StringIO())
    customer = Customer.objects.get(user__username="demo")
    with time_machine.travel(NOW - timedelta(hours=1), tick=False):
        refresh_market_prices(at=NOW - timedelta(hours=1))
        for code in ("premium", "standard", "flexible", "spot"):
            create_contract(
                customer=customer,
                request=CapacityRequest(
                    tier=Tier.objects.get(code=code), capacity_kw=Decimal("20"),
                    starts_at=NOW - timedelta(hours=1), ends_at=NOW + timedelta(hours=24),
                ),
            )  # fmt: skip
    seen = []
    decide = migration_pricing.decide_migrations

    def observe(**kwargs):
        # What a customer's booking would meet while the engine prices moves: the run's own session state, and
        # whether another session can take the admission locks (sites) and the inventory rows the run writes.
        seen.append((connection.in_atomic_block, lockable("sites_site"), lockable("sites_siteinventory")))
        return decide(**kwargs)

    monkeypatch.setattr(migration_pricing, "decide_migrations", observe)
    with time_machine.travel(NOW, tick=False):
        refresh_market_prices(at=NOW)
        refresh_weather(at=NOW)
        run = optimize_now(trigger=RunTrigger.MANUAL)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert seen == [(False, True, True)]
    assert run.details["migrations"]["decisions"] is not None  # the priced moves reached the applied run
