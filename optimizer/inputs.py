"""Build the engine's Problem from the database: what the world looks like now.

Reads (query cost: sites + inventories in two queries, latest price and temperature per site as subqueries,
one market price, open contracts with their tiers, credit rules and current placements in three more),
checks freshness, and returns a pure `optimizer.engine.Problem` plus a compact, JSON-ready snapshot that is
stored with the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
from django.conf import settings
from django.db.models import Prefetch

from sites.models import MarketPrice, Site, SiteInventory
from sites.simulation import floor_to_step, pue, simulate_inference_demand
from sla.choices import ContractStatus
from sla.models import Contract, Placement

from . import engine

STEP_MINUTES = 5
DEFAULT_TEMPERATURE_C = 20.0  # used (and flagged) when a site has never reported weather


class StaleInputs(Exception):
    """The inputs are too old (or missing) to act on; the run is skipped and says why."""


@dataclass(frozen=True)
class Inputs:
    problem: engine.Problem
    snapshot: dict
    sites: tuple[Site, ...]
    hardware: tuple  # sites.models.HardwareModel rows, in the problem's order
    contracts: tuple[Contract, ...]


def engine_site(site: Site) -> engine.Site:
    """A site row as the engine sees it (maintenance and offline sites are unavailable)."""
    return engine.Site(
        code=site.code,
        power_capacity_kw=float(site.power_capacity_kw),
        region=site.market_region,
        renewable_share=float(site.renewable_share),
        grid_carbon_kg_per_mwh=float(site.grid_carbon_kg_per_mwh),
        available=site.is_available,
    )


def engine_hardware(hw) -> engine.HardwareModel:
    """A catalogue row (sites.models.HardwareModel) as the engine sees it."""
    return engine.HardwareModel(
        code=hw.code,
        kind=hw.kind,
        power_kw=float(hw.power_kw_per_unit),
        hashrate_th_s=float(hw.hashrate_th_per_s or 0),
        tokens_per_s=float(hw.tokens_per_s or 0),
    )


def unserved_penalty_factor(credit_rules) -> float:
    """Penalty per unserved committed kWh, as a multiple of the contract's price per kWh.

    The first step of a credit schedule is the steepest: missing (100 - threshold) % of a month's committed
    energy costs credit_pct % of the month's charge, so one unserved kWh costs about
    price x credit_pct / (100 - threshold). Premium (10 % below 99.9 %): 100 x price; Standard (10 % below
    95 %): 2 x price; Flexible (10 % below 90 %): 1 x price; Spot (no schedule): 0.
    """
    rules = sorted(credit_rules, key=lambda rule: rule.uptime_below_pct, reverse=True)
    if not rules:
        return 0.0
    first = rules[0]
    margin_pct = float(Decimal(100) - first.uptime_below_pct)
    return float(first.credit_pct) / max(margin_pct, 0.01)


def _market_at(at: datetime) -> MarketPrice | None:
    return MarketPrice.objects.filter(interval_start__lte=at).order_by("-interval_start").first()


def build_inputs(*, at: datetime, strategy: str = "lp") -> Inputs:
    """The current problem: a rolling horizon starting at the 5-minute interval containing `at`.

    Raises StaleInputs when a site that may run has no price younger than MAX_DATA_AGE_MINUTES, or when
    the market price is that old: acting on stale prices is worse than not acting.
    """
    max_age = timedelta(minutes=settings.ENERGYARB["MAX_DATA_AGE_MINUTES"])
    interval = floor_to_step(at, STEP_MINUTES)
    inventories = SiteInventory.objects.select_related("hardware_model").order_by("hardware_model__code")
    sites = tuple(
        Site.objects.with_latest_energy_price()
        .with_latest_temperature()
        .prefetch_related(Prefetch("inventories", queryset=inventories))
        .order_by("code")
    )
    if not sites:
        raise StaleInputs("No sites: run `manage.py seed_sites` first.")
    hardware_rows = {inv.hardware_model.code: inv.hardware_model for site in sites for inv in site.inventories.all()}
    hardware = tuple(hardware_rows[code] for code in sorted(hardware_rows))
    hw_index = {hw.code: h for h, hw in enumerate(hardware)}

    problems = []
    for site in sites:
        if not site.is_available:
            continue
        if site.latest_price_at is None:
            problems.append(f"{site.name} has no energy price")
        elif at - site.latest_price_at > max_age:
            problems.append(f"{site.name}'s energy price is {_age(at - site.latest_price_at)} old")
    market = _market_at(at)
    if market is None:
        problems.append("no market price")
    elif at - market.interval_start > max_age:
        problems.append(f"the market price is {_age(at - market.interval_start)} old")
    if problems:
        raise StaleInputs(f"Inputs older than {settings.ENERGYARB['MAX_DATA_AGE_MINUTES']} min: " + "; ".join(problems))

    n_sites, n_hw = len(sites), len(hardware)
    inventory = np.zeros((n_sites, n_hw))
    previous = np.zeros((n_sites, n_hw))
    temperatures, pues, prices = [], [], []
    for s, site in enumerate(sites):
        for inv in site.inventories.all():
            inventory[s, hw_index[inv.hardware_model.code]] = inv.units_available
            previous[s, hw_index[inv.hardware_model.code]] = inv.units_running
        temperature = float(site.latest_temperature_c) if site.latest_temperature_c is not None else None
        temperatures.append(temperature)
        pues.append(float(pue(site.cooling_type, DEFAULT_TEMPERATURE_C if temperature is None else temperature)))
        prices.append(float(site.latest_price_usd_per_mwh) if site.latest_price_usd_per_mwh is not None else 0.0)

    # Rolling horizon: fine 5-minute steps for the hour about to be applied, then hourly steps, so switching
    # costs are weighed against how long a change will pay. Prices are held at their latest value (a
    # persistence forecast); regional demand follows its known daily pattern.
    knobs = settings.ENERGYARB
    period_hours, period_starts = engine.rolling_periods(
        interval, fine_steps=12, fine_minutes=STEP_MINUTES, horizon_hours=knobs["HORIZON_HOURS"]
    )
    n_periods = len(period_hours)
    full_demand = simulate_inference_demand(
        interval, int(knobs["HORIZON_HOURS"] * 60 / STEP_MINUTES), STEP_MINUTES, seed=knobs["SIMULATOR_SEED"]
    )
    offsets = [round((start - interval).total_seconds() / 60 / STEP_MINUTES) for start in period_starts]
    demand = {region: values[offsets] for region, values in full_demand.items()}
    contracts, commitments = commitments_at(at=at, site_codes={site.code for site in sites if site.is_available})
    problem = engine.Problem(
        sites=tuple(engine_site(site) for site in sites),
        hardware=tuple(engine_hardware(hw) for hw in hardware),
        inventory_units=inventory,
        period_hours=period_hours,
        pue=np.repeat(np.array(pues).reshape(n_sites, 1), n_periods, axis=1),
        energy_price_usd_per_mwh=np.repeat(np.array(prices).reshape(n_sites, 1), n_periods, axis=1),
        market=engine.Market(
            hashprice_usd_per_ph_day=np.full(n_periods, float(market.hashprice_usd_per_ph_day)),
            inference_price_usd_per_mtok=np.full(n_periods, float(market.inference_price_usd_per_mtok)),
            inference_demand_mtok_per_h=demand,
        ),
        commitments=commitments,
        previous_units=previous,
        settings=engine.Settings(
            switching_cost_usd_per_unit=knobs["SWITCHING_COST_USD_PER_UNIT"],
            carbon_price_usd_per_t=knobs["CARBON_PRICE_USD_PER_T"],
            integer=True,
            time_limit_s=knobs["SOLVER_TIME_LIMIT_S"],
        ),
        period_starts=period_starts,
    )
    snapshot = {
        "interval_start": interval.isoformat(),
        "strategy": strategy,
        "market": {
            "interval_start": market.interval_start.isoformat(),
            "hashprice_usd_per_ph_day": float(market.hashprice_usd_per_ph_day),
            "inference_price_usd_per_mtok": float(market.inference_price_usd_per_mtok),
            "inference_demand_mtok_per_h": {region: round(float(values[0]), 1) for region, values in demand.items()},
        },
        "sites": {
            site.code: {
                "status": site.status,
                "energy_price_usd_per_mwh": prices[s],
                "price_at": site.latest_price_at.isoformat() if site.latest_price_at else None,
                "temperature_c": temperatures[s],
                "pue": round(pues[s], 4),
            }
            for s, site in enumerate(sites)
        },
        "previous_units": {
            site.code: {hw.code: int(previous[s, h]) for h, hw in enumerate(hardware) if previous[s, h]}
            for s, site in enumerate(sites)
        },
        "commitments": [{"contract": c.id, "tier": c.tier, "capacity_kw": c.capacity_kw} for c in commitments],
        "settings": {
            "switching_cost_usd_per_unit": knobs["SWITCHING_COST_USD_PER_UNIT"],
            "carbon_price_usd_per_t": knobs["CARBON_PRICE_USD_PER_T"],
        },
    }
    return Inputs(problem=problem, snapshot=snapshot, sites=sites, hardware=hardware, contracts=contracts)


def commitments_at(*, at: datetime, site_codes: set[str]) -> tuple[tuple[Contract, ...], tuple[engine.Commitment, ...]]:
    """Active contracts running now, as engine commitments served on the sites they are placed on."""
    current = Placement.objects.current(at).select_related("site")
    contracts = tuple(
        Contract.objects.filter(status=ContractStatus.ACTIVE, starts_at__lte=at, ends_at__gt=at)
        .select_related("tier")
        .prefetch_related("tier__credit_rules", Prefetch("placements", queryset=current, to_attr="current_placements"))
        .order_by("pk")
    )
    commitments = []
    for contract in contracts:
        placed = tuple(sorted({p.site.code for p in contract.current_placements} & site_codes))
        price = float(contract.quoted_price_usd_per_kwh)
        commitments.append(
            engine.Commitment(
                id=contract.pk,
                tier=contract.tier.code,
                capacity_kw=float(contract.capacity_kw),
                price_usd_per_kwh=price,
                penalty_usd_per_kwh=price * unserved_penalty_factor(contract.tier.credit_rules.all()),
                n_minus_1=contract.tier.requires_n_minus_1,
                allowed_sites=placed or None,
                min_sites=contract.tier.min_sites,
            )
        )
    return contracts, tuple(commitments)


def _age(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"
