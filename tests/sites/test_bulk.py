"""Bulk loading of price history (sites.bulk): the same rows the refresh services would store, insert-only.

On PostgreSQL these run the binary COPY path; on SQLite, the fallback through the store_* services.
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sites.bulk import _to_fixed_point, bulk_load_energy_prices, bulk_load_market_prices, simulate_price_history
from sites.choices import DataSource
from sites.models import EnergyPrice, MarketPrice
from sites.services import PriceRowError, simulate_market_window
from tests.factories import EnergyPriceFactory, MarketPriceFactory, SiteFactory

START = datetime(2026, 3, 28, 22, tzinfo=UTC)  # across a DST change in Europe and a weekend
DAY = 288


@pytest.fixture
def sites(db):
    return [
        SiteFactory(code="a_norway", energy_cost_multiplier=Decimal("0.500")),
        SiteFactory(code="b_texas", time_zone="America/Chicago", grid_region="ERCOT", renewable_share=Decimal("0.4")),
    ]


def load_history(sites, start=START, periods=DAY):
    history = simulate_price_history(sites=sites, start=start, periods=periods)
    energy = bulk_load_energy_prices(
        site_ids=history.site_ids, start=start, prices_usd_per_mwh=history.energy_usd_per_mwh, source="simulator"
    )
    market = bulk_load_market_prices(
        start=start,
        hashprice_usd_per_ph_day=history.hashprice_usd_per_ph_day,
        inference_price_usd_per_mtok=history.inference_price_usd_per_mtok,
        source="simulator",
    )
    return energy, market


def stored_energy():
    return list(
        EnergyPrice.objects.order_by("site_id", "interval_start").values_list(
            "site_id", "grid_region", "interval_start", "interval_minutes", "price_usd_per_mwh", "source"
        )
    )


def stored_market():
    return list(
        MarketPrice.objects.order_by("interval_start").values_list(
            "interval_start", "hashprice_usd_per_ph_day", "inference_price_usd_per_mtok", "source"
        )
    )


def test_bulk_loaded_history_equals_what_the_refresh_services_would_store(sites):
    assert load_history(sites) == (2 * DAY, DAY)

    energy_rows, market_rows = simulate_market_window(sites=sites, start=START, periods=DAY)
    assert stored_energy() == [
        (row.site_id, "", row.interval_start, 5, row.price_usd_per_mwh, "simulator") for row in energy_rows
    ]
    assert stored_market() == [
        (row.interval_start, row.hashprice_usd_per_ph_day, row.inference_price_usd_per_mtok, "simulator")
        for row in market_rows
    ]


def test_loading_again_writes_nothing_and_a_stored_interval_is_never_rewritten(sites):
    norway = sites[0]
    kept = EnergyPriceFactory(site=norway, interval_start=START + timedelta(minutes=5), price_usd_per_mwh=Decimal(7))
    MarketPriceFactory(interval_start=START, hashprice_usd_per_ph_day=Decimal("1.0000"))

    assert load_history(sites) == (2 * DAY - 1, DAY - 1)
    energy, market = stored_energy(), stored_market()
    assert load_history(sites) == (0, 0)

    assert (stored_energy(), stored_market()) == (energy, market)
    kept.refresh_from_db()
    assert (kept.price_usd_per_mwh, kept.source) == (Decimal("7.00"), "simulator")
    assert MarketPrice.objects.get(interval_start=START).hashprice_usd_per_ph_day == Decimal("1.0000")


def test_overlapping_windows_add_only_the_new_intervals(sites):
    load_history(sites, periods=DAY)

    assert load_history(sites, start=START + timedelta(hours=12), periods=DAY) == (2 * DAY // 2, DAY // 2)
    assert EnergyPrice.objects.count() == 2 * (DAY + DAY // 2)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2.675, "2.68"),  # 267.49999999999997 once scaled in binary; Decimal("2.675") rounds half-even up
        (0.125, "0.12"),  # an exact binary tie: half-even keeps the even cent
        (-2.675, "-2.68"),
        (1.005, "1.00"),
        (0.015, "0.02"),
        (19999.995, "20000.00"),
        (-1000.0, "-1000.00"),
        (5000.0, "5000.00"),
        (-0.004, "0.00"),
    ],
)
def test_prices_are_rounded_like_the_refresh_services_round_them(sites, value, expected):
    prices = np.array([[value], [value]])

    bulk_load_energy_prices(site_ids=[s.pk for s in sites], start=START, prices_usd_per_mwh=prices, source="csv")

    assert {price for *_, price, _ in stored_energy()} == {Decimal(expected)}
    assert Decimal(repr(value)).quantize(Decimal("0.01")) == Decimal(expected)


@given(st.floats(min_value=-1000, max_value=20000, allow_nan=False))
def test_fixed_point_matches_decimal_repr_rounded_half_even(value):
    for places in (2, 4):
        expected = int(Decimal(repr(value)).scaleb(places).quantize(Decimal(1)))
        assert _to_fixed_point(np.array([value]), places)[0] == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (np.nan, r"EnergyPrice\.price_usd_per_mwh nan at \(1, 3\) is outside -1000\.\.20000; 1 value\(s\) refused"),
        (np.inf, "inf at"),
        (20000.01, "20000.01 at"),
        (-1000.5, "-1000.5 at"),
    ],
)
def test_a_non_finite_or_out_of_range_price_refuses_the_whole_load(sites, value, reason):
    prices = np.full((2, 10), 40.0)
    prices[1, 3] = value

    with pytest.raises(PriceRowError, match=reason):
        bulk_load_energy_prices(site_ids=[s.pk for s in sites], start=START, prices_usd_per_mwh=prices, source="csv")

    assert not EnergyPrice.objects.exists()


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"prices_usd_per_mwh": np.ones((1, 4))}, r"Expected prices of shape \(2, periods\)"),
        ({"prices_usd_per_mwh": np.ones(4)}, r"Expected prices of shape"),
        ({"source": "carrier_pigeon"}, "Unknown data source"),
        ({"site_ids": "same"}, "repeat a site"),
    ],
    ids=["rows-per-site", "one-dimensional", "unknown-source", "repeated-site"],
)
def test_malformed_calls_are_refused(sites, kwargs, reason):
    arguments = {
        "site_ids": [s.pk for s in sites],
        "start": START,
        "prices_usd_per_mwh": np.ones((2, 4)),
        "source": DataSource.CSV,
        **kwargs,
    }
    if arguments["site_ids"] == "same":
        arguments["site_ids"] = [sites[0].pk, sites[0].pk]

    with pytest.raises(PriceRowError, match=reason):
        bulk_load_energy_prices(**arguments)

    assert not EnergyPrice.objects.exists()


def test_an_empty_load_writes_nothing(sites):
    assert bulk_load_energy_prices(site_ids=[], start=START, prices_usd_per_mwh=np.empty((0, 0)), source="csv") == 0
    assert (
        bulk_load_market_prices(start=START, hashprice_usd_per_ph_day=[], inference_price_usd_per_mtok=[], source="csv")
        == 0
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("hashprice", "token_price", "reason"),
    [
        ([50.0, -1.0], [2.0, 2.0], r"MarketPrice\.hashprice_usd_per_ph_day -1\.0 at \(1,\)"),
        ([50.0, 50.0], [2.0, 1000.5], r"inference_price_usd_per_mtok 1000\.5"),
        ([50.0], [2.0, 2.0], "Expected two 1-d arrays of one length"),
    ],
)
def test_invalid_market_prices_are_refused(hashprice, token_price, reason):
    with pytest.raises(PriceRowError, match=reason):
        bulk_load_market_prices(
            start=START, hashprice_usd_per_ph_day=hashprice, inference_price_usd_per_mtok=token_price, source="csv"
        )
    assert not MarketPrice.objects.exists()


def test_a_start_off_the_five_minute_grid_is_refused(sites):
    with pytest.raises(ValueError, match="not on the 5-minute grid"):
        load_history(sites, start=START + timedelta(minutes=2))
    assert not EnergyPrice.objects.exists()
