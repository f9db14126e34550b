"""Bulk loading of price history: a year of 5-minute prices for a fleet in seconds, not minutes.

``sites.services``' store_* functions take one Python row per interval (a Decimal each, a key lookup each): right
for a refresh of a few hundred rows, far too slow for a million. The functions here take numpy arrays instead
(one row of prices per site, one column per interval) and, on PostgreSQL, stream them with ``COPY ... FROM STDIN
WITH (FORMAT BINARY)`` into a temporary table, built with numpy in one pass, then move them into place with one
``INSERT ... SELECT ... ON CONFLICT DO NOTHING``. That keeps the store_* rules:

- insert-only: an interval already stored (by any source) is left as it is, and the count returned is the number
  of rows actually written (the INSERT's row count, exact even under a concurrent writer);
- values are checked first, all or nothing: a non-finite or out-of-range value rejects the whole call
  (``PriceRowError``), before anything is written;
- the same rounding: a float becomes the Decimal of its shortest repr, rounded half-even to the field's places,
  exactly as the refresh services round it (``_decimal``), so a bulk-loaded interval equals a refreshed one.

On other databases (SQLite in tests) the arrays are handed to the store_* functions, with the same outcome.

Cost on PostgreSQL for a 10-site year (1,051,200 energy + 105,120 market rows): one COPY of ~40 MB and one
INSERT per table; see bench/prices.py for measured figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import connection, models, transaction

from core.db import column_field

from .models import EnergyPrice, MarketPrice, Site
from .services import (
    EnergyPriceRow,
    MarketPriceRow,
    PriceRowError,
    check_data_source,
    store_energy_prices,
    store_market_prices,
)
from .simulation import (
    EnergyPriceSeries,
    simulate_energy_price_series,
    simulate_hashprice,
    simulate_inference_price,
    simulation_timestamps,
)

PG_EPOCH_S = 946_684_800  # 2000-01-01T00:00:00Z: PostgreSQL's binary timestamps count microseconds from here
# A scaled value this close to a .5 tie may sit on either side of it after binary scaling; those few values
# are rounded one by one through Decimal (about one in a million; see _to_fixed_point).
TIE_TOLERANCE = 1e-6
# The binary COPY header: signature, flags (no OIDs), header extension length (none).
PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + np.array([0, 0], dtype=">i4").tobytes()
PGCOPY_TRAILER = np.array([-1], dtype=">i2").tobytes()


# Simulated history, as arrays.


@dataclass(frozen=True)
class SimulatedPrices:
    """Simulated prices for ``periods`` 5-minute intervals from ``start``: one energy series per site."""

    start: datetime
    periods: int
    site_ids: list[int]
    energy: list[EnergyPriceSeries]  # USD/MWh per site, with spike and negative masks
    hashprice_usd_per_ph_day: np.ndarray
    inference_price_usd_per_mtok: np.ndarray

    @property
    def energy_usd_per_mwh(self) -> np.ndarray:
        """Shape (sites, periods)."""
        return np.vstack([series.usd_per_mwh for series in self.energy]) if self.energy else np.empty((0, 0))


def simulate_price_history(*, sites: Sequence[Site], start: datetime, periods: int) -> SimulatedPrices:
    """The simulator's prices for the sites (pure compute, vectorized): the values a refresh would store.

    Uses the settings and site profiles of ``services.simulate_market_window``, so a bulk-loaded interval
    equals the one a periodic refresh would write. A 10-site year takes about a second.
    """
    knobs = settings.ENERGYARB
    seed = knobs["SIMULATOR_SEED"]
    energy = [
        simulate_energy_price_series(
            site.price_profile(), start, periods, seed=seed, spike_cap_usd_per_mwh=knobs["PRICE_SPIKE_CAP_USD_PER_MWH"]
        )
        for site in sites
    ]
    return SimulatedPrices(
        start=start,
        periods=periods,
        site_ids=[site.pk for site in sites],
        energy=energy,
        hashprice_usd_per_ph_day=simulate_hashprice(
            start, periods, seed=seed, level_usd_per_ph_day=knobs["HASHPRICE_LEVEL_USD_PER_PH_DAY"]
        ),
        inference_price_usd_per_mtok=simulate_inference_price(start, periods, seed=seed),
    )


# Validation and rounding, vectorized.


def _check_range(model: type, field: str, values: np.ndarray) -> None:
    """All values finite and within the field's validators' bounds, or PriceRowError naming the first bad one."""
    low, high = _field_bounds(model, field)
    bad = ~np.isfinite(values) | (values < low) | (values > high)
    if bad.any():
        index = np.unravel_index(int(np.flatnonzero(bad)[0]), values.shape)
        raise PriceRowError(
            f"{model.__name__}.{field} {float(values[index])!r} at {tuple(int(i) for i in index)} is outside"
            f" {low:g}..{high:g}; {int(bad.sum())} value(s) refused, nothing was written."
        )


def _field_bounds(model: type[models.Model], field: str) -> tuple[float, float]:
    low, high = -np.inf, np.inf
    for validator in column_field(model, field).validators:
        if isinstance(validator, MinValueValidator):
            low = float(validator.limit_value)
        elif isinstance(validator, MaxValueValidator):
            high = float(validator.limit_value)
    return low, high


def _to_fixed_point(values: np.ndarray, places: int) -> np.ndarray:
    """int64 units of 10^-places: Decimal(repr(value)) rounded half-even, as the refresh services round.

    ``rint(value * 10^places)`` agrees with that everywhere except within a whisker of a .5 tie, where binary
    scaling may land on either side (2.675 is 267.49999999999997 scaled); those are decided through Decimal.
    """
    scaled = np.asarray(values, dtype=float) * 10.0**places
    units = np.rint(scaled)
    near_tie = np.abs(np.abs(scaled - np.floor(scaled)) - 0.5) < TIE_TOLERANCE
    for index in np.flatnonzero(near_tie):
        exact = Decimal(repr(float(values.flat[index]))).scaleb(places).quantize(Decimal(1))
        units.flat[index] = int(exact)
    return units.astype(np.int64)


def _decimals(units: np.ndarray, places: int) -> list[Decimal]:
    return [Decimal(int(unit)).scaleb(-places) for unit in units]


# Binary COPY (PostgreSQL).


def _pg_timestamps(start: datetime, periods: int) -> np.ndarray:
    """PostgreSQL binary timestamptz values (microseconds since 2000-01-01 UTC) of the interval starts."""
    unix_s = simulation_timestamps(start, periods).astype(np.int64)
    return (unix_s - PG_EPOCH_S) * 1_000_000


def _binary_rows(columns: Sequence[np.ndarray]) -> bytes:
    """COPY BINARY tuples of 8-byte fields from int64 columns (all one length), without header or trailer."""
    count = len(columns[0])
    layout = [("fields", ">i2")]
    for number in range(len(columns)):
        layout += [(f"length{number}", ">i4"), (f"value{number}", ">i8")]
    rows = np.empty(count, dtype=np.dtype(layout))
    rows["fields"] = len(columns)
    for number, column in enumerate(columns):
        rows[f"length{number}"] = 8
        rows[f"value{number}"] = column
    return rows.tobytes()


def _copy_rows(cursor, table: str, columns: Sequence[tuple[str, str]], chunks) -> None:
    """Create ``pg_temp.<table>`` with the (name, type) columns and COPY the chunks (lists of int64 arrays) into it.

    Every type must be 8 bytes wide in binary COPY: bigint, or timestamptz (microseconds since 2000-01-01 UTC).
    The table lives until the transaction ends; dropping it first lets one transaction load twice.
    """
    names = ", ".join(name for name, _ in columns)
    cursor.execute(f"DROP TABLE IF EXISTS pg_temp.{table}")
    cursor.execute(f"CREATE TEMPORARY TABLE {table} ({', '.join(f'{n} {t}' for n, t in columns)}) ON COMMIT DROP")
    with cursor.copy(f"COPY pg_temp.{table} ({names}) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.write(PGCOPY_HEADER)
        for chunk in chunks:
            copy.write(_binary_rows(chunk))
        copy.write(PGCOPY_TRAILER)


def _is_postgresql() -> bool:
    return connection.vendor == "postgresql"


# The loaders.


@transaction.atomic
def bulk_load_energy_prices(
    *, site_ids: Sequence[int], start: datetime, prices_usd_per_mwh: np.ndarray, source: str
) -> int:
    """Store per-site 5-minute energy prices (row i for ``site_ids[i]``, column t for ``start + 5 t`` minutes).

    Intervals already stored for a site are left unchanged; returns the number of rows written.
    Raises PriceRowError (writing nothing) for an unknown source, a shape mismatch or a value outside the
    field's range (-1,000..20,000 USD/MWh, finite).
    """
    prices = np.asarray(prices_usd_per_mwh, dtype=float)
    check_data_source(source)
    if prices.ndim != 2 or prices.shape[0] != len(site_ids):
        raise PriceRowError(f"Expected prices of shape ({len(site_ids)}, periods), got {prices.shape}.")
    if len(set(site_ids)) != len(site_ids):
        raise PriceRowError("site_ids repeat a site; each may appear once.")
    if prices.size == 0:
        return 0
    _check_range(EnergyPrice, "price_usd_per_mwh", prices)
    cents = _to_fixed_point(prices, 2)
    periods = prices.shape[1]
    if not _is_postgresql():
        starts = [datetime.fromtimestamp(int(s), UTC) for s in simulation_timestamps(start, periods).astype(np.int64)]
        rows = [
            EnergyPriceRow(interval_start=moment, price_usd_per_mwh=price, site_id=site_id)
            for site_id, site_cents in zip(site_ids, cents, strict=True)
            for moment, price in zip(starts, _decimals(site_cents, 2), strict=True)
        ]
        return store_energy_prices(rows=rows, source=source)

    moments = _pg_timestamps(start, periods)
    chunks = (
        (np.full(periods, site_id, dtype=np.int64), moments, site_cents)
        for site_id, site_cents in zip(site_ids, cents, strict=True)
    )
    table = EnergyPrice._meta.db_table
    with connection.cursor() as cursor:
        columns = (("site_id", "bigint"), ("interval_start", "timestamptz"), ("price_cents", "bigint"))
        _copy_rows(cursor, "energyarb_energy_load", columns, chunks)
        # bigint * 0.01 is exact numeric; the conflict target is any unique constraint (the site-interval one).
        cursor.execute(
            f"INSERT INTO {table} (site_id, grid_region, interval_start, interval_minutes, price_usd_per_mwh, source,"
            " native_currency) SELECT site_id, '', interval_start, 5, price_cents * 0.01, %s, 'USD'"
            " FROM pg_temp.energyarb_energy_load ON CONFLICT DO NOTHING",
            [source],
        )
        return cursor.rowcount


@transaction.atomic
def bulk_load_market_prices(
    *, start: datetime, hashprice_usd_per_ph_day: np.ndarray, inference_price_usd_per_mtok: np.ndarray, source: str
) -> int:
    """Store 5-minute hashprice and inference-price intervals from ``start``; intervals already stored are kept.

    Returns the number of rows written; raises PriceRowError (writing nothing) for an unknown source, arrays of
    different lengths or a value outside the fields' ranges.
    """
    hashprice = np.asarray(hashprice_usd_per_ph_day, dtype=float)
    token_price = np.asarray(inference_price_usd_per_mtok, dtype=float)
    check_data_source(source)
    if hashprice.ndim != 1 or hashprice.shape != token_price.shape:
        raise PriceRowError(f"Expected two 1-d arrays of one length, got {hashprice.shape} and {token_price.shape}.")
    if hashprice.size == 0:
        return 0
    _check_range(MarketPrice, "hashprice_usd_per_ph_day", hashprice)
    _check_range(MarketPrice, "inference_price_usd_per_mtok", token_price)
    hash_units, token_units = _to_fixed_point(hashprice, 4), _to_fixed_point(token_price, 4)
    periods = hashprice.size
    if not _is_postgresql():
        starts = [datetime.fromtimestamp(int(s), UTC) for s in simulation_timestamps(start, periods).astype(np.int64)]
        rows = [
            MarketPriceRow(interval_start=moment, hashprice_usd_per_ph_day=h, inference_price_usd_per_mtok=t)
            for moment, h, t in zip(starts, _decimals(hash_units, 4), _decimals(token_units, 4), strict=True)
        ]
        return store_market_prices(rows=rows, source=source)

    table = MarketPrice._meta.db_table
    with connection.cursor() as cursor:
        columns = (("interval_start", "timestamptz"), ("hashprice_units", "bigint"), ("token_price_units", "bigint"))
        _copy_rows(
            cursor, "energyarb_market_load", columns, [(_pg_timestamps(start, periods), hash_units, token_units)]
        )
        cursor.execute(
            f"INSERT INTO {table} (interval_start, hashprice_usd_per_ph_day, inference_price_usd_per_mtok, source)"
            " SELECT interval_start, hashprice_units * 0.0001, token_price_units * 0.0001, %s"
            " FROM pg_temp.energyarb_market_load ON CONFLICT DO NOTHING",
            [source],
        )
        return cursor.rowcount
