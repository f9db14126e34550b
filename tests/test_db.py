"""`energyarb.db`: reads compiled once and run with new values, and rows turned into model instances."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from energyarb.db import PreparedRead, attnames, from_row
from optimizer.models import OptimizationRun
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
