"""Migration pricing: which running placements the plan says should move, and what each move earns and costs.

After a plan is solved, and before the transaction that applies it, `price_migrations` re-solves the engine with each
screened destination allowed instead of a placement's site and judges the saving against `migration_cost`
(sla.services.migration). Reads only (no lock held); the writes are `optimizer.services.migrate_after_run`'s
(docs/scenarios.md, docs/optimizer.md).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from typing import cast

import numpy as np
from django.conf import settings
from django.utils import timezone

from sla import capacity
from sla.choices import ContractStatus, PlacementKind
from sla.models import Contract, Placement
from sla.services import (
    MigrationCost,
    cutover_unserved_kw,
    dwell_time,
    load_bookings,
    migration_cost,
    migration_saving_usd,
    migration_worth_it,
    read_fleet,
)

from . import engine
from .engine.halls import inference_pue

logger = logging.getLogger(__name__)

CANDIDATES_PER_PLACEMENT = 3  # cheapest destinations re-solved per placement (plus the site it failed over from)


@dataclass(frozen=True)
class MigrationDecision:
    """The best move found for one running placement, priced by the engine and the migration rule."""

    contract_id: int
    tier: str
    placement_id: int
    from_site: str
    to_site: str
    kind: str  # migration | return (back to the site it failed over from)
    capacity_kw: float
    saving_usd_per_h: float  # the fleet's profit per hour with the move minus without (engine re-solve)
    hours: float  # hours the saving is counted: the rest of the placement, at most the planning horizon
    cost: MigrationCost
    priced: tuple[dict, ...] = ()  # every candidate of the contract re-solved: {from, to, kind, saving_usd, cost_usd}

    @property
    def saving_usd(self) -> float:
        return migration_saving_usd(saving_usd_per_h=self.saving_usd_per_h, hours_remaining=self.hours, cost=self.cost)

    @property
    def net_usd(self) -> float:
        return self.saving_usd - self.cost.total_usd

    @property
    def worth_it(self) -> bool:
        return migration_worth_it(saving_usd_per_h=self.saving_usd_per_h, hours_remaining=self.hours, cost=self.cost)

    @property
    def reason(self) -> str:
        verdict = ">" if self.worth_it else "<="
        return (
            f"{self.kind} {self.from_site} -> {self.to_site}: saves {self.saving_usd:,.2f} USD over {self.hours:.2f} h "
            f"{verdict} cost {self.cost.total_usd:,.2f} USD ({self.cost.warmup_kwh:,.1f} kWh warm-up, "
            f"{self.cost.downtime_minutes:g} min down)"
        )

    def as_dict(self) -> dict:
        return {
            "contract": self.contract_id,
            "tier": self.tier,
            "placement": self.placement_id,
            "from": self.from_site,
            "to": self.to_site,
            "kind": self.kind,
            "capacity_kw": self.capacity_kw,
            "saving_usd_per_h": round(self.saving_usd_per_h, 4),
            "hours": round(self.hours, 4),
            "saving_usd": round(self.saving_usd, 2),
            "cost": self.cost.as_dict(),
            "worth_it": self.worth_it,
            "reason": self.reason,
            "priced": list(self.priced),
        }

    def priced_row(self) -> dict:
        """This candidate as one entry of the contract's ``priced`` list."""
        return {
            "from": self.from_site,
            "to": self.to_site,
            "kind": self.kind,
            "saving_usd": round(self.saving_usd, 2),
            "cost_usd": round(self.cost.total_usd, 2),
        }


def site_energy_usd_per_it_kwh(problem: engine.Problem) -> np.ndarray:
    """What one IT kWh of inference costs at each site over the horizon, ``[S]`` USD/kWh: the hour-weighted mean of
    ``PUE x (energy + carbon) / 1000`` at the PUE of the halls its inference hardware runs in
    (``engine.halls.inference_pue``). It screens destinations; the engine re-solve decides."""
    hours = problem.period_hours
    per_kwh = inference_pue(problem) * (problem.energy_price_usd_per_mwh + _carbon_usd_per_mwh(problem)[:, None])
    per_kwh = per_kwh / 1000.0
    return (per_kwh * hours[None, :]).sum(axis=1) / hours.sum()


def _carbon_usd_per_mwh(problem: engine.Problem) -> np.ndarray:
    return problem.carbon_t_per_mwh * problem.settings.carbon_price_usd_per_t


@dataclass
class _Pricing:
    """What pricing moves works against: the plan as moved so far (``lp``, ``objective``), the rooms with every
    booking (and the moves decided so far), and the re-solves left in the budget."""

    lp: engine.Problem
    objective: float
    rooms: dict[str, capacity.SiteRoom]
    origins: dict[int, set[str]]
    short: set[str]
    budget: int
    now: datetime
    index: dict[str, int]
    site_of: dict[str, int] = dataclasses.field(init=False)
    unit: np.ndarray = dataclasses.field(init=False)
    energy_now: np.ndarray = dataclasses.field(init=False)
    pue_now: np.ndarray = dataclasses.field(init=False)
    horizon_h: float = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.site_of = {code: s for s, code in enumerate(self.lp.site_codes)}
        self.unit = site_energy_usd_per_it_kwh(self.lp)
        self.energy_now = self.lp.energy_price_usd_per_mwh[:, 0] + _carbon_usd_per_mwh(self.lp)
        self.pue_now = inference_pue(self.lp)[:, 0]  # a moved contract's kW at its inference hall's PUE
        self.horizon_h = float(self.lp.period_hours.sum())


@dataclass(frozen=True)
class _Candidate:
    """A priced move and what it leaves behind if taken: the problem with the move made and its objective."""

    decision: MigrationDecision
    trial: engine.Problem
    objective: float
    placement: Placement


def decide_migrations(*, problem: engine.Problem, now: datetime) -> list[MigrationDecision]:
    """For each running placement of a commitment in ``problem``, the best move the engine finds, by the rule.

    Eligible: placements of active contracts running at ``now`` on an available site for at least the dwell time.
    Destinations: online sites the contract does not use yet (its distinct sites, hence Premium N-1, are kept),
    in the same market region when the contract prefers one, with free SLA room for the kW over the rest of the
    placement (every booking counted: a voluntary move displaces nobody). Screening: the
    ``CANDIDATES_PER_PLACEMENT`` destinations whose IT kWh is cheaper than the current site's
    (``site_energy_usd_per_it_kwh``; every destination when the plan leaves the contract short, e.g. its site is
    over its power in a heat wave), plus the site it failed over from. Each is priced by re-solving the LP with
    the commitment allowed there instead (``saving = (profit with - profit without) / horizon hours``), then
    judged by ``migration_worth_it`` against ``migration_cost``. Moves are decided one after the other, each
    against the plan and the room left by the moves before it, at most one per contract (the best over its
    placements: its cut-overs never overlap, the next one waits for the next run); at most
    ``MIGRATION_MAX_EVALUATIONS`` re-solves. Returns the best candidate of every contract priced (worth it or
    not); nothing is written.
    """
    state = _start_pricing(problem, now)
    if state is None:
        return []
    placements, pricing = state
    decisions: list[MigrationDecision] = []
    for _, group in groupby(placements, key=lambda p: p.contract_id):
        # One move per contract and run, the best over its placements: its cut-overs never overlap.
        best, priced = _best_move_of_contract(pricing, group)
        if best is None:
            continue
        decision = dataclasses.replace(best.decision, priced=tuple(priced))
        decisions.append(decision)
        if decision.worth_it:  # the next contracts are judged against the plan with this move made
            pricing.lp, pricing.objective = best.trial, best.objective
            end = _placement_end(best.placement)
            _book_move(pricing.rooms, placement=best.placement, destination=decision.to_site, now=now, end=end)
    return decisions


def _start_pricing(problem: engine.Problem, now: datetime) -> tuple[list[Placement], _Pricing] | None:
    """The eligible placements (by tier priority, contract) and the pricing state on the LP relaxation of
    ``problem``; None when there is nothing to price (no commitment, no budget, no placement, no plan)."""
    budget = int(cast(int, settings.ENERGYARB["MIGRATION_MAX_EVALUATIONS"]))
    index = {str(c.id): i for i, c in enumerate(problem.commitments)}
    if not index or budget <= 0:
        return None
    placements = _eligible_placements(index, now)
    if not placements:
        return None
    rooms = {room.code: room for room in read_fleet(lock=False).rooms}
    load_bookings(rooms.values(), start=now, end=max(_placement_end(p) for p in placements))
    lp = dataclasses.replace(problem, settings=dataclasses.replace(problem.settings, integer=False))
    base = engine.solve(lp)
    if not base.ok:
        return None
    short = {str(c.id) for c in base.commitments if c.unserved_kwh > 1e-6 or c.n_minus_1_shortfall_kw > 1e-6}
    pricing = _Pricing(
        lp=lp,
        objective=base.objective_usd,
        rooms=rooms,
        origins=_failed_over_from(placements),
        short=short,
        budget=budget,
        now=now,
        index=index,
    )
    return placements, pricing


def _eligible_placements(index: dict[str, int], now: datetime) -> list[Placement]:
    """Placements of the active contracts in the problem, running at ``now`` for at least the dwell time."""
    return list(
        Placement.objects.filter(contract__status=ContractStatus.ACTIVE, contract_id__in=list(index))
        .current(now)
        .filter(valid_from__lte=now - dwell_time())
        .select_related("site", "moved_from", "contract__tier")
        .order_by("contract__tier__priority", "contract_id", "pk")
    )


def _best_move_of_contract(pricing: _Pricing, group: Iterable[Placement]) -> tuple[_Candidate | None, list[dict]]:
    """The best move over a contract's placements (by net USD), and every candidate priced on the way."""
    best: _Candidate | None = None
    priced: list[dict] = []
    for placement in group:
        contract, source = placement.contract, placement.site.code
        commitment = pricing.lp.commitments[pricing.index[str(contract.pk)]]
        if (
            source not in pricing.rooms
            or source not in pricing.site_of
            or source not in (commitment.allowed_sites or ())
        ):
            continue
        origin = pricing.origins.get(placement.pk, set())
        unserved_kw = float(cutover_unserved_kw(contract, pricing.rooms.values(), moving=placement, now=pricing.now))
        for destination in _destinations(pricing, placement, origin):
            if pricing.budget <= 0:
                break
            pricing.budget -= 1
            candidate = _price_move(pricing, placement, commitment, destination, origin, unserved_kw)
            if candidate is None:
                continue
            priced.append(candidate.decision.priced_row())
            if best is None or candidate.decision.net_usd > best.decision.net_usd:
                best = candidate
    return best, priced


def _destinations(pricing: _Pricing, placement: Placement, origin: set[str]) -> list[str]:
    """The sites a placement is priced at: online sites the contract does not use, in its preferred region, with
    SLA room for its kW over the rest of the placement; the ``CANDIDATES_PER_PLACEMENT`` cheapest (only those
    cheaper than its site unless the plan leaves the contract short), plus the site it failed over from."""
    contract, source, now = placement.contract, placement.site.code, pricing.now
    end = _placement_end(placement)
    rooms, site_of, unit = pricing.rooms, pricing.site_of, pricing.unit
    used = {
        code
        for code, room in rooms.items()
        for b in room.bookings
        if b.contract_id == contract.pk and b.starts_at < end and (b.ends_at is None or b.ends_at > now)
    }
    options = sorted(
        (
            code
            for code, room in rooms.items()
            if code not in used
            and code in site_of
            and pricing.lp.sites[site_of[code]].available
            and (not contract.region_preference or room.market_region == contract.region_preference)
            and capacity.room_kw(room, now, end, preemptible=True) >= placement.capacity_kw
        ),
        key=lambda code: (unit[site_of[code]], code),
    )
    if str(contract.pk) not in pricing.short:
        options = [code for code in options if unit[site_of[code]] < unit[site_of[source]]]
    chosen = options[:CANDIDATES_PER_PLACEMENT]
    chosen += [code for code in options if code in origin and code not in chosen]
    return chosen


def _price_move(
    pricing: _Pricing,
    placement: Placement,
    commitment: engine.Commitment,
    destination: str,
    origin: set[str],
    unserved_kw: float,
) -> _Candidate | None:
    """Re-solve the plan with the commitment allowed at ``destination`` instead of its site, and price the move;
    None when the engine finds no plan."""
    contract: Contract = placement.contract
    source, lp = placement.site.code, pricing.lp
    allowed = tuple(sorted((set(commitment.allowed_sites or ()) - {source}) | {destination}))
    trial = dataclasses.replace(
        lp,
        commitments=tuple(
            dataclasses.replace(c, allowed_sites=allowed) if c is commitment else c for c in lp.commitments
        ),
    )
    solved = engine.solve(trial)
    if not solved.ok:
        return None
    d = pricing.site_of[destination]
    decision = MigrationDecision(
        contract_id=contract.pk,
        tier=contract.tier.code,
        placement_id=placement.pk,
        from_site=source,
        to_site=destination,
        kind=PlacementKind.RETURN if destination in origin else PlacementKind.MIGRATION,
        capacity_kw=float(placement.capacity_kw),
        saving_usd_per_h=(solved.objective_usd - pricing.objective) / pricing.horizon_h,
        hours=min((_placement_end(placement) - pricing.now).total_seconds() / 3600.0, pricing.horizon_h),
        cost=migration_cost(
            capacity_kw=float(placement.capacity_kw),
            price_usd_per_kwh=commitment.price_usd_per_kwh,
            penalty_usd_per_kwh=commitment.penalty_usd_per_kwh,
            destination_pue=float(pricing.pue_now[d]),
            destination_energy_usd_per_mwh=float(pricing.energy_now[d]),
            unserved_kw=unserved_kw,
        ),
    )
    return _Candidate(decision=decision, trial=trial, objective=solved.objective_usd, placement=placement)


def _placement_end(placement: Placement) -> datetime:
    return min(placement.valid_to or placement.contract.ends_at, placement.contract.ends_at)


def _failed_over_from(placements: list[Placement]) -> dict[int, set[str]]:
    """For each failover placement, the site it took over from (moving back there is a return)."""
    return {
        p.pk: {p.moved_from.code} for p in placements if p.kind == PlacementKind.FAILOVER and p.moved_from is not None
    }


def _book_move(rooms: dict, *, placement: Placement, destination: str, now: datetime, end: datetime) -> None:
    """The rooms as they will be after a decided move (the source holds the kW until now, the destination after)."""
    for room in rooms.values():
        for booking in list(room.bookings):
            if booking.placement_id == placement.pk:
                room.bookings.remove(booking)
                if booking.starts_at < now:
                    room.bookings.append(dataclasses.replace(booking, ends_at=now))
    rooms[destination].bookings.append(
        capacity.Booking(
            site_id=rooms[destination].site_id,
            capacity_kw=placement.capacity_kw,
            starts_at=now,
            ends_at=end,
            preemptible=placement.contract.tier.is_preemptible,
            contract_id=placement.contract_id,
        )
    )


def price_migrations(*, problem: engine.Problem, now: datetime | None = None) -> list[MigrationDecision] | Exception:
    """``decide_migrations`` outside any transaction (unlocked reads and engine re-solves); an error is returned,
    to be recorded with the run, not raised: the plan applies without moves."""
    try:
        return decide_migrations(problem=problem, now=now or timezone.now())
    except Exception as exc:
        logger.exception("Pricing placement migrations failed")
        return exc
