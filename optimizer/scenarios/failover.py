"""The maintenance scenario: the SLA failover on a rolled-back copy, the engine before/after, and the return."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from sites.choices import SiteStatus
from sites.models import Site

from .. import engine
from ..books import solution_streams
from ..engine.halls import inference_pue
from .world import ScenarioError, ScenarioResult, _checked, _start, build_world


def _placed_kw(at: datetime) -> dict[str, Decimal]:
    from sla.models import Placement

    rows = (
        Placement.objects.committed()
        .current(at)
        .values("site__code")
        .annotate(kw=Sum("capacity_kw"))
        .order_by("site__code")
    )
    return {row["site__code"]: row["kw"] for row in rows}


def _book_demo_contracts(*, at: datetime, hours: int) -> list[int]:
    """One contract per tier for a demo customer (used only inside the rolled-back transaction)."""
    from sla.models import Tier
    from sla.services import CapacityRequest, create_contract, ensure_user, seed_tiers

    if not Tier.objects.exists():
        seed_tiers()
    demo = ensure_user(username="scenario-demo", password=None, staff=False, customer_name="Scenario demo")
    from sla.models import Customer

    customer = Customer.objects.get(user__username=demo.username)
    ids = []
    for tier, kw in zip(Tier.objects.order_by("priority"), ("300", "400", "300", "200"), strict=False):
        contract = create_contract(
            customer=customer,
            request=CapacityRequest(
                tier=tier, capacity_kw=Decimal(kw), starts_at=at, ends_at=at + timedelta(hours=hours + 24)
            ),
        )
        ids.append(contract.pk)
    return ids


@dataclass
class _Maintenance:
    """What the maintenance did on the copy: the engine before and during, the failover, and what the optimizer
    decided during the window and at the (projected) return."""

    code: str
    target: Site
    hours: int
    before_world: Any
    before_problem: Any
    before: Any
    after_world: Any
    after_problem: Any
    after: Any
    report: Any  # sla.services.FailoverReport
    during: dict[str, Any]  # migrate_after_run right after the failover
    returned: dict[str, Any]  # migrate_after_run at the projected return
    failed_at: datetime
    back: datetime
    open_on_site: int


def _target_site(*, site: str | None, apply: bool, hours: int, now: datetime, notes: list[str]) -> Site:
    """The site to take down (given, or the one holding the most placed kW); books a demo book on the copy when
    nothing is placed and nothing is applied."""
    placed = _placed_kw(now)
    if not placed and not apply:
        _book_demo_contracts(at=now, hours=hours)
        placed = _placed_kw(now)
        notes.append("No contracts were placed: a demo book (one contract per tier) was booked on the copy.")
    code = site or (max(placed, key=lambda c: placed[c]) if placed else None)
    if code is None:
        raise ScenarioError("no site given and no contract is placed anywhere")
    try:
        target = Site.objects.get(code=code)
    except Site.DoesNotExist:
        raise ScenarioError(f"unknown site {code!r}") from None
    if target.status != SiteStatus.ONLINE:
        raise ScenarioError(f"{code} is already {target.status}")
    return target


def _take_down(target: Site, *, start: datetime, hours: int, actor, reason: str) -> _Maintenance:
    """Solve before, fail the site over, solve during, run the optimizer's re-placement and migrations, and project
    the return on a savepoint that is always rolled back."""
    from sites.services import set_site_status
    from sla.models import Placement
    from sla.services import fail_over_site

    from ..services import migrate_after_run

    before_world = build_world(start=start, hours=hours)
    before_problem = before_world.problem()
    before = _checked(engine.solve(before_problem), "before-maintenance")
    set_site_status(site=target, status=SiteStatus.MAINTENANCE, reason=reason or "maintenance scenario", actor=actor)
    report = fail_over_site(site=target, actor=actor, reason=reason or "maintenance scenario")
    failed_at = timezone.now()  # the failover's moment: its placements start here
    back = failed_at + timedelta(hours=hours)
    after_world = build_world(start=start, hours=hours)
    after_problem = after_world.problem()
    after = _checked(engine.solve(after_problem), "in-maintenance")
    during = migrate_after_run(problem=after_problem, now=failed_at, actor=actor)
    open_on_site = Placement.objects.committed().current(failed_at).filter(site=target).count()
    with transaction.atomic():  # the return, projected: always rolled back
        set_site_status(site=target, status=SiteStatus.ONLINE, reason="maintenance over (projected)", actor=actor)
        horizon = max(round(settings.ENERGYARB["HORIZON_HOURS"]), 1)
        returned = migrate_after_run(
            problem=build_world(start=_start(back), hours=horizon).problem(), now=back, actor=actor
        )
        transaction.set_rollback(True)
    return _Maintenance(
        code=target.code, target=target, hours=hours, before_world=before_world, before_problem=before_problem,
        before=before, after_world=after_world, after_problem=after_problem, after=after, report=report,
        during=during, returned=returned, failed_at=failed_at, back=back, open_on_site=open_on_site,
    )  # fmt: skip


def _affected_contracts(m: _Maintenance) -> tuple[dict[int, Any], dict[int, Decimal], dict[int, Decimal]]:
    """The contracts the maintenance touched (with tier and credit rules), their unserved kW over the window, and
    the kW each holds after the failover."""
    from sla.models import Contract, Placement

    downtime_kw: dict[int, Decimal] = {}
    for downtime in m.report.downtimes:
        downtime_kw[downtime.contract_id] = downtime_kw.get(downtime.contract_id, Decimal(0)) + downtime.unserved_kw
    decisions = [*m.during["decisions"], *m.returned["decisions"]]
    affected = (
        {pk for pk, _, _ in m.report.moved}
        | set(downtime_kw)
        | set(m.report.preempted)
        | {d["contract"] for d in decisions}
        | {pk for pk, _, _ in [*m.during["replaced"], *m.returned["replaced"]]}
    )
    contracts = {
        c.pk: c
        for c in Contract.objects.filter(pk__in=affected).select_related("tier").prefetch_related("tier__credit_rules")
    }
    held_kw = dict(
        Placement.objects.filter(contract_id__in=contracts)
        .current(m.failed_at)
        .values("contract_id")
        .annotate(kw=Sum("capacity_kw"))
        .values_list("contract_id", "kw")
    )
    return contracts, downtime_kw, held_kw


def _month_uptime_and_credit(contract, unserved: Decimal, hours: int, now: datetime) -> tuple[Decimal, Decimal]:
    """Monthly uptime if the window is the month's only outage (committed kWh = kW x service hours in the month;
    unserved kWh = unserved kW x window hours), and the credit it earns (USD)."""
    from sla.services import month_bounds

    month_start, month_end = month_bounds(now.date())
    seconds = (min(month_end, contract.service_ended_at) - max(month_start, contract.starts_at)).total_seconds()
    service_h = Decimal(max(seconds, 0)) / 3600
    committed_kwh = contract.capacity_kw * service_h
    month_uptime = (
        (1 - unserved * min(Decimal(hours), service_h) / committed_kwh) * 100 if committed_kwh else Decimal(100)
    )
    credit_pct = contract.tier.credit_pct_for(month_uptime)
    credit = (contract.charge_usd_between(month_start, month_end) * credit_pct / 100).quantize(Decimal("0.01"))
    return month_uptime, credit


def _failover_costs(m: _Maintenance, contract, penalty: float, held: Decimal) -> tuple[list, list, bool]:
    """The failover's moves of `contract` priced by the migration rule: the source is going away, so staying earns
    nothing and owes the credit (saving = kW x (price + penalty) per hour); the cost is a voluntary move's."""
    from sla.services import migration_cost, migration_worth_it

    pue0 = inference_pue(m.after_problem)[:, 0]  # the moved kW at its inference hall's PUE
    price0 = m.after_problem.energy_price_usd_per_mwh[:, 0]
    price = float(contract.quoted_price_usd_per_kwh)
    moves = [(to, kw) for c, to, kw in m.report.moved if c == contract.pk]
    costs = [
        migration_cost(
            capacity_kw=float(kw),
            price_usd_per_kwh=price,
            penalty_usd_per_kwh=penalty,
            destination_pue=float(pue0[m.after_world.index(to)]),
            destination_energy_usd_per_mwh=float(price0[m.after_world.index(to)]),
            unserved_kw=float(contract.capacity_kw - (held - kw)),  # the cut-over leaves unserved what others lack
        )
        for to, kw in moves
    ]
    worth = all(
        migration_worth_it(saving_usd_per_h=float(kw) * (price + penalty), hours_remaining=float(m.hours), cost=cost)
        for (_, kw), cost in zip(moves, costs, strict=True)
    )
    return moves, costs, worth


def _return_columns(m: _Maintenance, pk: int) -> dict[str, Any]:
    """What the optimizer decided for contract `pk` when the site is back (projected)."""
    [verdict] = [d for d in m.returned["decisions"] if d["contract"] == pk] or [None]
    options = [o for o in (verdict["priced"] if verdict else ()) if o["kind"] == "return"]
    if verdict is None:
        after = "-"
    else:
        after = f"{verdict['kind']} {verdict['from']}->{verdict['to']}" if verdict["moved"] else "stays"
    return {
        "after_maintenance": after,
        "saving_usd": verdict["saving_usd"] if verdict else 0.0,
        "cost_usd": verdict["cost"]["total_usd"] if verdict else 0.0,
        "return_option": ", ".join(
            f"{o['to']}: {o['saving_usd']:,.2f} {'>' if o['saving_usd'] > o['cost_usd'] else '<='} "
            f"{o['cost_usd']:,.2f} USD"
            for o in options
        )
        or "-",
    }


def _contract_rows(m: _Maintenance, now: datetime) -> tuple[list[dict[str, Any]], Decimal, dict[str, list[float]]]:
    """One row per affected contract (failover, uptime, credit, the return), the credits owed, uptimes per tier."""
    contracts, downtime_kw, held_kw = _affected_contracts(m)
    commitments = {str(c.id): c for c in m.before_problem.commitments}
    rows = []
    credits_usd = Decimal(0)
    tier_uptime: dict[str, list[float]] = {}
    for pk in sorted(contracts, key=lambda k: (contracts[k].tier.priority, k)):
        contract = contracts[pk]
        unserved = min(downtime_kw.get(pk, Decimal(0)), contract.capacity_kw)
        window_uptime = float((1 - unserved / contract.capacity_kw) * 100) if contract.capacity_kw else 100.0
        _, credit = _month_uptime_and_credit(contract, unserved, m.hours, now)
        credits_usd += credit
        tier_uptime.setdefault(contract.tier.code, []).append(window_uptime)
        commitment = commitments.get(str(pk))
        penalty = commitment.penalty_usd_per_kwh if commitment else 0.0
        moves, costs, worth = _failover_costs(m, contract, penalty, held_kw.get(pk, Decimal(0)))
        rows.append(
            {
                "contract": pk,
                "tier": contract.tier.code,
                "capacity_kw": float(contract.capacity_kw),
                "moved_kw": float(sum((kw for _, kw in moves), Decimal(0))),
                "moved_to": ", ".join(sorted({to for to, _ in moves})) or "-",
                "failover_cost_usd": sum(cost.total_usd for cost in costs),
                "migration_worth_it": worth,
                "unserved_kw": float(unserved),
                "preempted": pk in m.report.preempted,
                "replaced_kw": float(sum(kw for c, _, kw in m.during["replaced"] if c == pk)),
                "uptime_pct_window": window_uptime,
                "credit_usd": float(credit),
                **_return_columns(m, pk),
            }
        )
    return rows, credits_usd, tier_uptime


def _summary(
    m: _Maintenance, rows: list[dict[str, Any]], credits_usd: Decimal, tier_uptime: dict[str, list[float]]
) -> dict[str, Any]:
    report, during, returned = m.report, m.during, m.returned
    moved_back = [d for d in returned["decisions"] if d["moved"]]
    return {
        "site": m.code,
        "hours": m.hours,
        "placements_moved": len(report.moved),
        "moved_kw": float(report.moved_kw),
        "unserved_kw": float(report.unserved_kw),
        "premium_uptime_pct": min(tier_uptime.get("premium", [100.0])),
        "contracts_preempted": len(report.preempted),
        "lower_tier_contracts_down": sum(1 for r in rows if r["tier"] != "premium" and r["unserved_kw"] > 0),
        "credits_owed_usd": float(credits_usd),
        "profit_before_usd": m.before.totals.profit_usd,
        "profit_after_usd": m.after.totals.profit_usd,
        "engine_shortfalls_after": len(m.after.shortfalls),
        "open_placements_on_site": m.open_on_site,
        "migrations_during": sum(1 for d in during["decisions"] if d["moved"]),
        "replaced_during_kw": float(sum(kw for _, _, kw in during["replaced"])),
        "migrations_priced_at_return": len(returned["decisions"]),
        "placements_returned": sum(1 for d in moved_back if d["kind"] == "return"),
        "placements_migrated_at_return": sum(1 for d in moved_back if d["kind"] == "migration"),
        "replaced_at_return_kw": float(sum(kw for _, _, kw in returned["replaced"])),
        "return_saving_usd": sum(d["saving_usd"] for d in moved_back),
        "return_cost_usd": sum(d["cost"]["total_usd"] for d in moved_back),
    }


def _notes(m: _Maintenance) -> list[str]:
    back, during, returned = m.back, m.during, m.returned
    notes = [
        f"Failover: {m.report}. The failover moves each placement for the rest of its contract; uptime and credits "
        f"assume the {m.hours} h window is the month's only outage."
    ]
    notes += [f"During maintenance: re-placed {kw} kW of contract {c} on {to}." for c, to, kw in during["replaced"]]
    notes += [f"During maintenance: {d['reason']}." for d in during["decisions"]]
    notes += [
        f"Back online at {back:%H:%M} UTC: re-placed {kw} kW of contract {c} on {to}."
        for c, to, kw in returned["replaced"]
    ]
    notes += [
        f"Back online at {back:%H:%M} UTC: {d['reason']}" + (f" (refused: {d['refused']})" if d["refused"] else "")
        for d in returned["decisions"]
    ]
    return notes


def _chart(m: _Maintenance) -> dict[str, Any]:
    """Average IT kW by site over the window, before and during the maintenance."""
    site_kw_before = (m.before.ledger.it_kw * m.before_problem.period_hours).sum(axis=1) / m.hours
    site_kw_after = (m.after.ledger.it_kw * m.after_problem.period_hours).sum(axis=1) / m.hours
    return {
        "title": f"Average IT kW by site, before and during maintenance of {m.code}",
        "x_label": "site",
        "y_label": "IT kW",
        "x": list(m.before_world.site_codes),
        "lines": {"before": site_kw_before.tolist(), "during maintenance": site_kw_after.tolist()},
        "kind": "bar",
    }


def maintenance(
    *, site: str | None = None, hours: int = 6, apply: bool = False, actor=None, reason: str = ""
) -> ScenarioResult:
    """A site goes into maintenance now for ``hours``: the SLA failover on a copy, the engine before/after, and the
    optimizer's placement decisions when the site comes back.

    Runs ``sla.services.fail_over_site`` inside a transaction rolled back unless ``apply``, then what follows every
    applied run (``optimizer.services.migrate_after_run``: lost capacity re-placed, migrations that pay). When no
    contract is placed anywhere and nothing is applied, a demo book (one contract per tier) is booked first, inside
    the same rolled-back transaction. The return is projected at the end of the window, on a savepoint that is
    always rolled back: the site back online, the same re-placement and migration decisions on the world simulated
    from then (the failed-over placements may move back, ``kind=return``, when the saving beats the cost).
    Uptime and credits are over the maintenance window and its calendar month.
    """
    began = time.perf_counter()
    now = timezone.now()
    start = _start(now)
    notes: list[str] = []
    with transaction.atomic():
        target = _target_site(site=site, apply=apply, hours=hours, now=now, notes=notes)
        m = _take_down(target, start=start, hours=hours, actor=actor, reason=reason)
        contract_rows, credits_usd, tier_uptime = _contract_rows(m, now)
        summary = _summary(m, contract_rows, credits_usd, tier_uptime)
        notes += _notes(m)
        if not apply:
            transaction.set_rollback(True)
        else:
            notes.append(f"Applied: {m.code} stays in maintenance; placements, notices and downtimes are stored.")
    return ScenarioResult(
        scenario="maintenance",
        title=f"Maintenance: {m.code} for {hours} h",
        start=start,
        hours=hours,
        rows=contract_rows or [{"contract": "-", "tier": "-", "moved_kw": 0.0}],
        summary=summary,
        streams={"before maintenance": solution_streams(m.before), "in maintenance": solution_streams(m.after)},
        chart=_chart(m),
        notes=notes,
        applied=apply,
        seconds=time.perf_counter() - began,
    )
