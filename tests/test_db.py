"""`core.db`: reads compiled once and run with new values, and rows turned into model instances."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from core.db import LocalReadCache, PreparedInsert, PreparedRead, attnames, from_row
from optimizer.models import OptimizationRun
from sites.models import Site
from sla.models import Placement, Quote
from tests.factories import T0, CustomerFactory, OptimizationRunFactory, PlacementFactory, SiteFactory, TierFactory

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


def test_a_prepared_insert_writes_the_rows_the_orm_writes_and_sets_their_keys():
    site = SiteFactory(code="oslo")
    contract = PlacementFactory(site=site).contract
    made = [
        Placement(contract=contract, site=site, capacity_kw=Decimal("1.5"), valid_from=T0, valid_to=T0 + H),
        Placement(contract=contract, site=site, capacity_kw=Decimal("2"), valid_from=T0 + H, reason="moved"),
    ]
    by_orm = [Placement(contract=contract, site=site, capacity_kw=p.capacity_kw, valid_from=p.valid_from,
                        valid_to=p.valid_to, reason=p.reason) for p in made]  # fmt: skip

    PreparedInsert(Placement).save(made)
    Placement.objects.bulk_create(by_orm)

    assert all(p.pk and not p._state.adding for p in made)
    columns = [name for name in attnames(Placement) if name != "id"]
    rows = {p.pk: Placement.objects.filter(pk=p.pk).values_list(*columns).get() for p in made + by_orm}
    assert [rows[p.pk] for p in made] == [rows[p.pk] for p in by_orm]


def test_a_prepared_insert_fills_auto_now_add_fields():
    priced = ("token_price_usd_per_mtok", "tokens_per_s_per_kw", "base_value_usd_per_kwh", "tier_multiplier",
              "utilization_pct", "utilization_factor", "price_usd_per_kwh", "total_usd")  # fmt: skip
    price = dict.fromkeys(priced, Decimal("1"))
    quote = Quote(customer=CustomerFactory(), tier=TierFactory(), capacity_kw=Decimal("5"), starts_at=T0,
                  ends_at=T0 + H, token_price_source="market", valid_until=T0 + H, **price)  # fmt: skip

    PreparedInsert(Quote).save([quote])

    assert quote.created_at is not None
    assert Quote.objects.get(pk=quote.pk).created_at == quote.created_at


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
