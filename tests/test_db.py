"""`core.db`: reads compiled once and run with new values, and rows turned into model instances."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from core.db import LocalReadCache, PreparedRead, attnames, from_row
from optimizer.models import OptimizationRun
from sites.models import Site
from sla.models import Placement
from tests.factories import T0, OptimizationRunFactory, PlacementFactory, SiteFactory

pytestmark = pytest.mark.django_db

H = timedelta(hours=1)


def placements_between(start, end):
    return Placement.objects.filter(valid_from__lt=end, valid_to__gt=start, site__code="oslo").values_list("pk")


def test_a_prepared_read_answers_like_its_queryset_for_every_value():
    oslo, dublin = SiteFactory(code="oslo"), SiteFactory(code="dublin")
    early = PlacementFactory(site=oslo, valid_from=T0, valid_to=T0 + 2 * H)
    late = PlacementFactory(site=oslo, valid_from=T0 + 3 * H, valid_to=T0 + 5 * H)
    PlacementFactory(site=dublin, valid_from=T0, valid_to=T0 + 5 * H)
    read = PreparedRead(placements_between, start=type(T0), end=type(T0))

    for start, end, expected in [
        (T0, T0 + H, {early.pk}),
        (T0 + H, T0 + 4 * H, {early.pk, late.pk}),
        (T0 + 2 * H, T0 + 3 * H, set()),  # half-open windows: touching is not overlapping
    ]:
        assert {pk for (pk,) in read.rows(start=start, end=end)} == expected
        assert {pk for (pk,) in placements_between(start, end)} == expected


def test_a_parameter_the_query_does_not_use_is_refused_at_compile_time():
    read = PreparedRead(lambda start, end: Placement.objects.filter(valid_from__lt=end).values_list("pk"),
                        start=type(T0), end=type(T0))  # fmt: skip

    with pytest.raises(ValueError, match="does not use \\['start'\\]"):
        read.rows(start=T0, end=T0 + H)


def test_from_row_builds_the_instance_the_orm_would():
    run = OptimizationRunFactory(revenue_usd_per_h=Decimal("1234.5600"), inputs={"sites": {"oslo": {"pue": 1.1}}})
    read = PreparedRead(
        lambda pk: OptimizationRun.objects.filter(pk=pk).values_list(*attnames(OptimizationRun)), pk=int
    )

    (row,) = read.rows(pk=run.pk)
    built, end = from_row(OptimizationRun, row)
    stored = OptimizationRun.objects.get(pk=run.pk)

    assert end == len(attnames(OptimizationRun))
    assert built.pk == run.pk and built.inputs == {"sites": {"oslo": {"pue": 1.1}}}  # JSON decoded
    assert built.revenue_usd_per_h == stored.revenue_usd_per_h == Decimal("1234.5600")  # Decimal on SQLite too
    assert built.queued_at == stored.queued_at and built.queued_at.tzinfo is not None
    assert not read.rows(pk=run.pk + 1)


@pytest.mark.django_db(transaction=True)
def test_a_local_read_cache_keeps_rows_for_its_period_and_drops_them_on_a_save(settings, monkeypatch):
    settings.API_READ_CACHE_SECONDS = 5
    clock = [1000.0]
    monkeypatch.setattr("core.db.time.monotonic", lambda: clock[0])
    cache = LocalReadCache("test-sites", models=(Site,))
    site = SiteFactory(code="oslo", name="Oslo")
    read = lambda: Site.objects.filter(code="oslo").values_list("name", flat=True).get()  # noqa: E731

    assert cache.get("oslo", read) == "Oslo"
    Site.objects.filter(pk=site.pk).update(name="Oslo (renamed)")  # no signal: kept for its period
    assert cache.get("oslo", read) == "Oslo"
    clock[0] += 5
    assert cache.get("oslo", read) == "Oslo (renamed)"
    site.name = "Oslo North"
    site.save()  # a signal: dropped at once
    assert cache.get("oslo", read) == "Oslo North"


def test_a_local_read_cache_keeps_nothing_read_inside_a_transaction(settings):
    settings.API_READ_CACHE_SECONDS = 5
    cache = LocalReadCache("test-sites-atomic", models=(Site,))
    reads = []

    for _ in range(2):
        cache.get("oslo", lambda: reads.append(1))

    assert len(reads) == 2  # the test runs in a transaction that is rolled back


# The app's prepared reads against the ORM: core.db relies on Django internals (its docstring lists them); these
# fail loudly when an upgrade changes them, by comparing each read of the app with its queryset run by the ORM.


def test_core_db_was_checked_against_the_installed_django():
    import django

    from core.db import CHECKED_WITH_DJANGO

    assert django.VERSION[:2] == CHECKED_WITH_DJANGO, (
        f"Django {django.get_version()}: re-check the internals core.db relies on (its docstring), run this module, "
        "then update core.db.CHECKED_WITH_DJANGO"
    )


def _the_app_reads():
    """Every PreparedRead of the hot paths with values that find rows, next to the instance they should build."""
    from rest_framework.authtoken.models import Token

    from sla.api.parsers import TOKEN_READ
    from sla.api.serializers import QUOTE_READ, TIER_READ
    from sla.models import Quote
    from sla.services.admission import BOOKINGS_READ, FLEET_READS, OPEN_ENDED_BOOKINGS_READ, SOME_SITES_READS
    from tests.factories import (
        CustomerFactory,
        HardwareModelFactory,
        MarketPriceFactory,
        SiteInventoryFactory,
        UserFactory,
    )

    customer = CustomerFactory(user=UserFactory())
    token = Token.objects.create(user=customer.user)
    placement = PlacementFactory(valid_from=T0, valid_to=T0 + H, capacity_kw=Decimal("12.345"))
    SiteInventoryFactory(site=placement.site, hardware_model=HardwareModelFactory(inference=True))
    MarketPriceFactory(interval_start=T0)
    tier = placement.contract.tier
    price = dict.fromkeys(("token_price_usd_per_mtok", "tokens_per_s_per_kw", "base_value_usd_per_kwh",
                           "tier_multiplier", "utilization_pct", "utilization_factor", "price_usd_per_kwh",
                           "total_usd"), Decimal("1.25"))  # fmt: skip
    quote = Quote.objects.create(customer=customer, tier=tier, capacity_kw=Decimal("5"), starts_at=T0,
                                 ends_at=T0 + H, token_price_source="market", valid_until=T0 + H,
                                 sites=[{"site": "oslo", "capacity_kw": "5"}], **price)  # fmt: skip
    return [
        (TOKEN_READ, {"key": token.key}),
        (TIER_READ, {"code": tier.code}),
        (QUOTE_READ, {"pk": quote.pk, "customer": customer.pk}),
        (FLEET_READS[False], {}),
        (SOME_SITES_READS[1], {"site_0": placement.site_id}),
        (BOOKINGS_READ, {"start": T0, "end": T0 + H}),
        (OPEN_ENDED_BOOKINGS_READ, {"start": T0}),
    ]


def test_every_prepared_read_of_the_app_answers_like_its_queryset_run_by_the_orm():
    from django.db import transaction

    with transaction.atomic():  # FLEET_READS[True] and SOME_SITES_READS lock: inside a transaction, as admission
        for read, values in _the_app_reads():
            prepared = read.rows(**values)
            by_orm = list(read.build(**values))
            assert prepared, f"{read.build} found nothing: the comparison would prove nothing"
            if read.model is not None and read.template == "{query}" and len(prepared[0]) >= len(attnames(read.model)):
                built = from_row(read.model, prepared[0])[0]
                stored = read.model._default_manager.get(pk=built.pk)
                assert [getattr(built, name) for name in attnames(read.model)] == [
                    getattr(stored, name) for name in attnames(read.model)
                ]
            assert [_as_orm(row, orm_row) for row, orm_row in zip(prepared, by_orm, strict=True)] == by_orm


def _as_orm(row: tuple, orm_row: tuple) -> tuple:
    """A driver row with what the ORM's converters do and the app does after `from_row` or by hand: JSON text
    decoded, SQLite's floats as the ORM's Decimals, naive datetimes aware (core.db.decimal / aware)."""
    import json

    from core.db import aware, decimal

    out = []
    for value, orm_value in zip(row, orm_row, strict=True):
        if isinstance(value, str) and not isinstance(orm_value, str):
            value = json.loads(value)
        elif isinstance(orm_value, Decimal):
            value = decimal(value)
        elif isinstance(orm_value, datetime):
            value = aware(value)
        out.append(value)
    return tuple(out)
