"""Grid programs from the database into the engine (``engine.grid.GridInputs``), and the plan back into them.

- ``grid_inputs``: the open events over the horizon as per-site caps on the IT load (the event's cap on the IT
  baseline, with the baseline and, for per-MWh programs, the rate the delivered reduction is paid), each
  Standard/Flexible contract's remaining downtime allowance this month; two queries plus one for the deliveries of
  the month.
- ``record_event_plans`` (after a run is applied): the IT kW the plan draws at each event site in the event's
  first planned period (``EventPerformance.planned_kw``, what events are settled on until metering exists), and a
  downtime record for each contract the plan leaves short in the applied interval while an event is active.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import numpy as np
from django.conf import settings
from django.db.models import DecimalField, ExpressionWrapper, F, Sum

from grid.choices import EventStatus, PaymentBasis, ProgramKind
from grid.models import Enrollment, EventPerformance
from grid.peaks import CP_MONTHS, ERCOT_TZ, LoadSeries, PeakPredictor
from grid.services import record_event_loads
from sites.markets.models import AncillaryPrice, SystemLoad
from sla.choices import TierCode
from sla.models import Contract, ContractDelivery, Downtime
from sla.services import month_bounds

from . import engine
from .engine.grid import CoincidentPeak, EventCap, GridInputs, ReserveOffer

SHEDDABLE = (TierCode.STANDARD, TierCode.FLEXIBLE)
KW_MINUTES = DecimalField(max_digits=20, decimal_places=3)


def _period_bounds(period_starts, period_hours) -> list[tuple[datetime, datetime]]:
    return [(start, start + timedelta(hours=float(h))) for start, h in zip(period_starts, period_hours, strict=True)]


def event_caps(problem: engine.Problem, at: datetime) -> tuple[EventCap, ...]:
    """One cap per open event and site of the fleet, over the periods it overlaps."""
    bounds = _period_bounds(problem.period_starts, problem.period_hours)
    horizon_end = bounds[-1][1]
    site_pos = {code: s for s, code in enumerate(problem.site_codes)}
    rows = (
        EventPerformance.objects.filter(
            event__status__in=(EventStatus.NOTIFIED, EventStatus.ACTIVE),
            event__starts_at__lt=horizon_end,
            event__ends_at__gt=at,
        )
        .select_related("event", "event__program", "site")
        .order_by("event_id", "site_id")
    )
    caps = []
    for row in rows:
        s = site_pos.get(row.site.code)
        if s is None:
            continue
        event = row.event
        periods = np.array([start < event.ends_at and event.starts_at < end for start, end in bounds])
        program = event.program
        pays = program.payment_basis == PaymentBasis.PER_MWH  # capacity programs are paid for holding the MW
        caps.append(
            EventCap(
                event=f"{program.code}#{event.pk}",
                site=row.site.code,
                periods=periods,
                cap_kw=float(event.cap_kw(row.baseline_kw)),
                penalty_usd_per_kwh=float(program.penalty_usd_per_mwh) / 1000.0,
                baseline_kw=float(row.baseline_kw),
                payment_usd_per_kwh=float(program.payment_rate) / 1000.0 if pays else 0.0,
                it_kw=True,  # baselines, plans and settlement are in IT kW (grid/baselines.py)
            )
        )
    return tuple(caps)


def downtime_allowance_kwh(contracts, at: datetime) -> dict[str, float]:
    """Standard/Flexible contract id -> kWh it may still go unserved this month before its uptime target breaks:
    (1 - target) x committed kWh of the month (its window within the month) - kWh already unserved."""
    start, end = month_bounds(date(at.year, at.month, 1))
    mine = [c for c in contracts if c.tier.code in SHEDDABLE and c.tier.uptime_target_pct is not None]
    if not mine:
        return {}
    short = ExpressionWrapper((F("committed_kw") - F("delivered_kw")) * F("interval_minutes"), KW_MINUTES)
    unserved = dict(
        ContractDelivery.objects.filter(contract__in=mine, interval_start__gte=start, interval_start__lt=end)
        .filter(committed_kw__gt=F("delivered_kw"))
        .order_by()
        .values("contract")
        .annotate(kw_minutes=Sum(short))
        .values_list("contract", "kw_minutes")
    )
    allowance = {}
    for contract in mine:
        hours = max((min(end, contract.ends_at) - max(start, contract.starts_at)).total_seconds() / 3600, 0.0)
        budget = (1 - float(contract.tier.uptime_target_pct) / 100) * float(contract.capacity_kw) * hours
        used = float(unserved.get(contract.pk) or 0) / 60
        allowance[str(contract.pk)] = max(budget - used, 0.0)
    return allowance


AS_SERVICE: dict[str, str] = {  # program kind -> the ancillary service whose clearing price pays it (sites.markets)
    ProgramKind.RRS: "RRS",
    ProgramKind.ECRS: "ECRS",
    ProgramKind.NON_SPIN: "NSPIN",
    ProgramKind.REG_UP: "REGUP",
    ProgramKind.REG_DOWN: "REGDN",
}
HOURS_PER_YEAR = 8760.0


def _offer_price(enrollment: Enrollment, at: datetime) -> float | None:
    """USD per MW-h held: the newest clearing price of the service at or before `at`, or a fixed MW-year rate."""
    program = enrollment.program
    if program.payment_basis == PaymentBasis.FIXED_MW_YEAR:
        return float(program.payment_rate) / HOURS_PER_YEAR
    service = AS_SERVICE.get(program.kind)
    if service is None:
        return None
    price = (
        AncillaryPrice.objects.filter(market=program.market.lower(), service=service, interval_start__lte=at)
        .order_by("-interval_start")
        .values_list("price_usd_per_mw_h", flat=True)
        .first()
    )
    return float(price) if price is not None else None


def reserve_offers(problem: engine.Problem, enrollments, at: datetime) -> tuple[ReserveOffer, ...]:
    """One offer per ancillary enrollment in force at a site of the problem, priced flat over the horizon."""
    offers = []
    n_t = problem.period_hours.shape[0]
    for enrollment in enrollments:
        if not enrollment.program.is_ancillary or enrollment.site.code not in problem.site_codes:
            continue
        price = _offer_price(enrollment, at)
        if price is None:
            continue
        offers.append(
            ReserveOffer(
                product=enrollment.program.kind,
                site=enrollment.site.code,
                max_kw=float(enrollment.committed_mw) * 1000.0,
                price_usd_per_mw_h=np.full(n_t, price),
                response_s=float(enrollment.program.response_time_s),
            )
        )
    return tuple(offers)


def coincident_peak(problem: engine.Problem, enrollments, at: datetime) -> CoincidentPeak | None:
    """The peak probability of the hour being planned (4CP predictor on the stored ERCOT system load), for the
    sites enrolled in a coincident-peak program; later periods of the horizon are not yet predictable (0)."""
    sites = tuple(sorted({e.site.code for e in enrollments if e.program.is_coincident_peak} & set(problem.site_codes)))
    kind = str(settings.ENERGYARB["CP_KIND"])
    if not sites or (kind == "4cp" and at.astimezone(ERCOT_TZ).month not in CP_MONTHS):
        return None
    hour = at.replace(minute=0, second=0, microsecond=0)
    rows = list(
        SystemLoad.objects.filter(
            market="ercot",
            zone="SYSTEM",
            kind="actual",
            interval_minutes=60,
            interval_start__gte=hour - timedelta(days=31),
            interval_start__lt=hour,
        )
        .order_by("interval_start")
        .values_list("interval_start", "load_mw")
    )
    if len(rows) < 48 or rows[-1][0] != hour - timedelta(hours=1):
        return None
    starts = [start for start, _ in rows] + [hour]
    values = np.array([float(load) for _, load in rows] + [float(rows[-1][1])])  # hour t's own load is not used
    try:
        probability = PeakPredictor().probabilities(LoadSeries(tuple(starts), values))[-1]
    except ValueError:  # a gap in the stored load: no prediction rather than a wrong one
        return None
    per_period = np.array(
        [float(probability) if start < hour + timedelta(hours=1) else 0.0 for start in problem.period_starts or ()]
    )
    rate = float(str(settings.ENERGYARB["CP_RATE_USD_PER_KW_YEAR"]))
    return CoincidentPeak(per_period, rate, 4 if kind == "4cp" else 12, sites, kind.upper())


def grid_inputs(problem: engine.Problem, contracts, at: datetime) -> GridInputs | None:
    """The grid side of a run, or None when there is none (the problem is then solved as without grid): open
    events, ancillary enrollments priced by the stored clearing prices, the coincident-peak probability."""
    caps = event_caps(problem, at)
    enrollments = list(
        Enrollment.objects.in_force(at).select_related("program", "site").filter(program__is_active=True)
    )
    reserves = reserve_offers(problem, enrollments, at) if enrollments else ()
    peak = coincident_peak(problem, enrollments, at) if enrollments else None
    if not caps and not reserves and peak is None:
        return None
    allowance = downtime_allowance_kwh(contracts, at) if caps or peak is not None else {}
    return GridInputs(reserves=reserves, events=caps, peak=peak, allowance_kwh=allowance)


def record_event_plans(problem: engine.Problem, solution: engine.Solution, *, now: datetime) -> int:
    """Write what the applied plan draws at each event site, and downtime for contracts shed in the applied
    interval of an active event; returns the performance rows written."""
    grid = problem.grid
    if grid is None:
        return 0
    kw = np.array([h.power_kw for h in problem.hardware])
    it_kw = np.einsum("sht,h->st", solution.units, kw)  # [S, T]
    site_pos = {code: s for s, code in enumerate(problem.site_codes)}
    planned: dict[int, dict[str, Decimal]] = {}
    for cap in grid.events:
        event_id = int(cap.event.rsplit("#", 1)[1])
        first = int(np.argmax(cap.periods))
        planned.setdefault(event_id, {})[cap.site] = Decimal(repr(round(float(it_kw[site_pos[cap.site], first]), 3)))
    written = 0
    for event_id, by_code in planned.items():
        ids = dict(EventPerformance.objects.filter(event_id=event_id).values_list("site__code", "site_id"))
        written += record_event_loads(
            event_id=event_id, planned_kw={ids[code]: kw_ for code, kw_ in by_code.items() if code in ids}
        )
    _record_shed_downtime(problem, solution, now=now)
    return written


def _record_shed_downtime(problem: engine.Problem, solution: engine.Solution, *, now: datetime) -> None:
    """A contract the plan leaves short now, while an event is active at a site it runs on, gets a downtime record
    for the applied interval (uptime itself is measured from the deliveries the run records)."""
    active = [cap for cap in (problem.grid.events if problem.grid is not None else ()) if cap.periods[0]]
    if not active:
        return
    sites = {cap.site: cap.event for cap in active}
    end = now + timedelta(hours=float(problem.period_hours[0]))
    short = {str(c.id): c for c in solution.commitments if c.unserved_kw > 1e-3}
    contracts = Contract.objects.filter(pk__in=[int(k) for k in short if str(k).isdigit()]).prefetch_related(
        "placements__site"
    )
    rows = []
    for contract in contracts:
        codes = [p.site for p in contract.placements.all() if p.site.code in sites and p.valid_from <= now]
        if not codes:
            continue
        site = codes[0]
        rows.append(
            Downtime(
                contract=contract,
                site=site,
                unserved_kw=Decimal(repr(round(short[str(contract.pk)].unserved_kw, 3))),
                started_at=now,
                ended_at=end,
                reason=f"curtailed for grid event {sites[site.code]}"[:200],
            )
        )
    Downtime.objects.bulk_create(rows)
