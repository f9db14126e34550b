"""Revenue per IT kWh of each machine at the simulator's means, against public market references.

Prints the markdown tables of docs/economics.md: the hardware catalogue (sites/catalogue.py, with sources), the
model classes a GPU node can serve, and the SLA rate card per tier against GPU cloud per kW-month. Pure numpy
and Decimal (no Django, no database). Run from the repository root:

    .venv/bin/python bench/economics.py [--seed 2025] [--days 365]
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sites import catalogue
from sites.simulation import (
    pue,
    simulate_fleet_prices,
    simulate_hashprice,
    simulate_inference_demand,
    simulate_inference_price,
)
from sites.simulation.prices import derive_site_price_profile
from sla.capacity import HOURS_PER_MONTH

START = datetime(2025, 1, 1, tzinfo=UTC)
# The seeded tiers' multipliers (sla.services.seeding.DEFAULT_TIERS, which imports Django).
TIERS = (("Premium", "3.50"), ("Standard", "2.00"), ("Flexible", "1.20"), ("Spot", "0.40"))
BASE_RATE = 415.0  # settings SLA_BASE_RATE_USD_PER_KW_MONTH default (sla.capacity.BASE_RATE_USD_PER_KW_MONTH)


def _means(seed: int, days: int) -> dict[str, float]:
    periods = days * 24
    hashprice = float(simulate_hashprice(START, periods, 60, seed=seed).mean())
    token = float(simulate_inference_price(START, periods, 60, seed=seed).mean())
    demand = sum(simulate_inference_demand(START, periods, 60, seed=seed).values())
    gpu = catalogue.model_class()
    capacity = catalogue.FLEET_TOTALS["inference_gpu"] * gpu.tokens_per_s_per_node * 3600 / 1e6
    profiles = [
        derive_site_price_profile(
            code=site.code,
            time_zone=site.time_zone,
            latitude=float(site.latitude),
            renewable_share=float(site.renewable_share),
            energy_cost_multiplier=float(site.energy_cost_multiplier),
            grid_region=site.grid_region,
        )
        for site in catalogue.SITES
    ]
    energy = simulate_fleet_prices(profiles, START, periods, 60, seed=seed)
    energy_mean = float(np.mean(energy))
    return {
        "hashprice": hashprice,
        "token": token,
        "sell_through": float(np.mean(np.minimum(demand / capacity, 1.0))),
        "energy_usd_per_kwh": energy_mean / 1000,
    }


def hardware_table(means: dict[str, float]) -> list[str]:
    rows = [
        "| hardware | IT kW | output | USD/h at the means | USD per IT kWh | reference | source |",
        "|---|---:|---|---:|---:|---|---|",
    ]
    th_day_usd = means["hashprice"] / 1000  # USD per TH/s per day
    for seed in catalogue.HARDWARE:
        kw = float(seed.power_kw_per_unit)
        if seed.kind == "miner":
            th = float(seed.hashrate_th_per_s)
            per_h = th * th_day_usd / 24
            output = f"{th:,.0f} TH/s"
            published = float(catalogue.HASHPRICE_USD_PER_PH_DAY) / 1000
            ref = f"{published:.3f} USD per TH-day published; {th_day_usd:.3f} simulated"
        else:
            gpu = catalogue.model_class()
            tokens = float(seed.tokens_per_s)
            full = tokens * 3600 / 1e6 * means["token"]
            per_h = full * means["sell_through"]
            output = f"{tokens:,.0f} tokens/s ({gpu.code.upper()} class)"
            lo, hi = (float(v) for v in catalogue.GPU_RENTAL_USD_PER_GPU_HOUR)
            ref = (
                f"{full / kw:.2f} USD/kWh ({full / catalogue.GPUS_PER_NODE:.2f} per GPU-hour) when every token "
                f"sells; rental {lo:.0f}-{hi:.0f} USD per GPU-hour = {lo * 8 / kw:.2f}-{hi * 8 / kw:.2f} USD/kWh"
            )
        rows.append(
            f"| {seed.name} | {kw:.1f} | {output} | {per_h:.2f} | {per_h / kw:.3f} | {ref} | "
            f"{catalogue.SOURCES[seed.code]} |"
        )
    return rows


def class_table(means: dict[str, float]) -> list[str]:
    rows = [
        "| model class | tokens/s per 8 x H100 node | list price USD/Mtok | USD per GPU-hour, all sold | "
        "USD per IT kWh, all sold | at the mean sell-through | throughput basis |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    kw = float(catalogue.HARDWARE[-1].power_kw_per_unit)
    for row in catalogue.MODEL_CLASSES:
        per_h = row.tokens_per_s_per_node * 3600 / 1e6 * float(row.list_price_usd_per_mtok)
        rows.append(
            f"| {row.name} | {row.tokens_per_s_per_node:,} | {row.list_price_usd_per_mtok} | "
            f"{per_h / catalogue.GPUS_PER_NODE:.2f} | {per_h / kw:.2f} | {per_h * means['sell_through'] / kw:.2f} | "
            f"{row.throughput_basis} |"
        )
    return rows


def rate_card_table() -> list[str]:
    lo, hi = (float(v) for v in catalogue.GPU_RENTAL_USD_PER_GPU_HOUR)
    nameplate = float(catalogue.GPU_NODE_NAMEPLATE_KW)
    hours = float(HOURS_PER_MONTH)
    cloud = f"{lo * 8 / nameplate * hours:,.0f}-{hi * 8 / nameplate * hours:,.0f}"
    rows = [
        "| tier | multiplier | USD per kW-month (empty fleet) | USD per kWh | at a full fleet (x 1.5) | "
        "GPU cloud on demand, USD per kW-month |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, multiplier in TIERS:
        monthly = BASE_RATE * float(multiplier)
        rows.append(
            f"| {name} | {multiplier} | {monthly:,.0f} | {monthly / hours:.3f} | {monthly * 1.5:,.0f} | "
            f"{cloud} (8 x H100 at {lo:.0f}-{hi:.0f} USD per GPU-hour on 10.2 kW) |"
        )
    return rows


def hall_table(means: dict[str, float]) -> list[str]:
    """PUE by hall at a mild (20 degC) and the Texas design day (40 degC), and an S21's margin per IT kWh at the mean
    energy price when its hall is counted, against the site's chilled-air curve it was charged before."""
    energy = means["energy_usd_per_kwh"]
    s21 = next(h for h in catalogue.HARDWARE if h.code == "miner_air")
    earns = float(s21.hashrate_th_per_s) / 1000 * means["hashprice"] / 24 / float(s21.power_kw_per_unit)
    rows = [
        "| hall | who runs in it | PUE at 20 degC | PUE at 40 degC | S21 margin per IT kWh at 40 degC |",
        "|---|---|---:|---:|---:|",
    ]
    halls = (
        ("mining_air", "air-cooled miners (fans, no chillers)"),
        ("air", "air-cooled GPU nodes (chillers); before: every machine at an air site"),
        ("hydro", "hydro miners (dry coolers)"),
        ("immersion", "immersion tanks"),
    )
    for hall, who in halls:
        at_40 = float(pue(hall, 40.0))
        rows.append(
            f"| {hall} | {who} | {float(pue(hall, 20.0)):.2f} | {at_40:.2f} | {earns - at_40 * energy:.3f} USD |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args()
    means = _means(args.seed, args.days)
    print(
        f"Simulator means over {args.days} days from {START:%Y-%m-%d} (seed {args.seed}): hashprice "
        f"{means['hashprice']:.1f} USD per PH-day, token list price {means['token']:.3f} USD/Mtok, inference "
        f"demand {means['sell_through'] * 100:.1f} % of the GPU fleet's tokens, energy "
        f"{means['energy_usd_per_kwh'] * 1000:.1f} USD/MWh (mean of the ten sites).\n"
    )
    for table in (hardware_table(means), class_table(means), rate_card_table(), hall_table(means)):
        print("\n".join(table), end="\n\n")


if __name__ == "__main__":
    main()
