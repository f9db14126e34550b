"""The maintenance scenario: the SLA failover on a rolled-back copy, the engine before/after, and the return."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from sites.choices import SiteStatus
from sites.models import Site

from .. import engine
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
    from sites.services import set_site_status
    from sla.models import Contract, Placement
    from sla.services import fail_over_site, migration_cost, migration_worth_it, month_bounds

    from ..services import migrate_after_run

    began = time.perf_counter()
    now = timezone.now()
    start = _start(now)
    notes: list[str] = []
    with transaction.atomic():
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
        before_world = build_world(start=start, hours=hours)
        before_problem = before_world.problem()
        before = _checked(engine.solve(before_problem), "before-maintenance")
        commitments = {str(c.id): c for c in before_problem.commitments}

        set_site_status(
            site=target, status=SiteStatus.MAINTENANCE, reason=reason or "maintenance scenario", actor=actor
        )
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

        downtime_kw: dict[int, Decimal] = {}
        for downtime in report.downtimes:
            downtime_kw[downtime.contract_id] = downtime_kw.get(downtime.contract_id, Decimal(0)) + downtime.unserved_kw
        decisions = [*during["decisions"], *returned["decisions"]]
        affected = (
            {pk for pk, _, _ in report.moved}
            | set(downtime_kw)
            | set(report.preempted)
            | {d["contract"] for d in decisions}
            | {pk for pk, _, _ in [*during["replaced"], *returned["replaced"]]}
        )
        contracts = {
            c.pk: c
            for c in Contract.objects.filter(pk__in=affected)
            .select_related("tier")
            .prefetch_related("tier__credit_rules")
        }
        held_kw = dict(
            Placement.objects.filter(contract_id__in=contracts)
            .current(failed_at)
            .values("contract_id")
            .annotate(kw=Sum("capacity_kw"))
            .values_list("contract_id", "kw")
        )
        month_start, month_end = month_bounds(now.date())
        window_h = Decimal(hours)
        pue0 = after_problem.pue[:, 0]
        price0 = after_problem.energy_price_usd_per_mwh[:, 0]
        contract_rows = []
        credits_usd = Decimal(0)
        tier_uptime: dict[str, list[float]] = {}
        for pk in sorted(contracts, key=lambda k: (contracts[k].tier.priority, k)):
            contract = contracts[pk]
            unserved = min(downtime_kw.get(pk, Decimal(0)), contract.capacity_kw)
            window_uptime = float((1 - unserved / contract.capacity_kw) * 100) if contract.capacity_kw else 100.0
            # Monthly uptime if the window is the month's only outage: committed kWh = kW x service hours in the
            # month; unserved kWh = unserved kW x window hours.
            service_h = (
                Decimal(
                    max(
                        (
                            min(month_end, contract.service_ended_at) - max(month_start, contract.starts_at)
                        ).total_seconds(),
                        0,
                    )
                )
                / 3600
            )
            committed_kwh = contract.capacity_kw * service_h
            month_uptime = (
                (1 - unserved * min(window_h, service_h) / committed_kwh) * 100 if committed_kwh else Decimal(100)
            )
            credit_pct = contract.tier.credit_pct_for(month_uptime)
            credit = (contract.charge_usd_between(month_start, month_end) * credit_pct / 100).quantize(Decimal("0.01"))
            credits_usd += credit
            tier_uptime.setdefault(contract.tier.code, []).append(window_uptime)
            # The failover by the migration rule: the source is going away, so staying earns nothing and owes the
            # credit (saving = kW x (price + penalty) per hour); the cost is the same model as a voluntary move.
            commitment = commitments.get(str(pk))
            price = float(contract.quoted_price_usd_per_kwh)
            penalty = commitment.penalty_usd_per_kwh if commitment else 0.0
            moves = [(to, kw) for c, to, kw in report.moved if c == pk]
            held = held_kw.get(pk, Decimal(0))  # after the failover; the cut-over leaves unserved what others lack
            costs = [
                migration_cost(
                    capacity_kw=float(kw),
                    price_usd_per_kwh=price,
                    penalty_usd_per_kwh=penalty,
                    destination_pue=float(pue0[after_world.index(to)]),
                    destination_energy_usd_per_mwh=float(price0[after_world.index(to)]),
                    unserved_kw=float(contract.capacity_kw - (held - kw)),
                )
                for to, kw in moves
            ]
            worth = all(
                migration_worth_it(
                    saving_usd_per_h=float(kw) * (price + penalty), hours_remaining=float(hours), cost=cost
                )
                for (_, kw), cost in zip(moves, costs, strict=True)
            )
            [verdict] = [d for d in returned["decisions"] if d["contract"] == pk] or [None]
            options = [o for o in (verdict["priced"] if verdict else ()) if o["kind"] == "return"]
            contract_rows.append(
                {
                    "contract": pk,
                    "tier": contract.tier.code,
                    "capacity_kw": float(contract.capacity_kw),
                    "moved_kw": float(sum((kw for _, kw in moves), Decimal(0))),
                    "moved_to": ", ".join(sorted({to for to, _ in moves})) or "-",
                    "failover_cost_usd": sum(cost.total_usd for cost in costs),
                    "migration_worth_it": worth,
                    "unserved_kw": float(unserved),
                    "preempted": pk in report.preempted,
                    "replaced_kw": float(sum(kw for c, _, kw in during["replaced"] if c == pk)),
                    "uptime_pct_window": window_uptime,
                    "credit_usd": float(credit),
                    "after_maintenance": (
                        "-"
                        if verdict is None
                        else f"{verdict['kind']} {verdict['from']}->{verdict['to']}"
                        if verdict["moved"]
                        else "stays"
                    ),
                    "saving_usd": verdict["saving_usd"] if verdict else 0.0,
                    "cost_usd": verdict["cost"]["total_usd"] if verdict else 0.0,
                    "return_option": ", ".join(
                        f"{o['to']}: {o['saving_usd']:,.2f} {'>' if o['saving_usd'] > o['cost_usd'] else '<='} "
                        f"{o['cost_usd']:,.2f} USD"
                        for o in options
                    )
                    or "-",
                }
            )
        moved_back = [d for d in returned["decisions"] if d["moved"]]
        summary = {
            "site": code,
            "hours": hours,
            "placements_moved": len(report.moved),
            "moved_kw": float(report.moved_kw),
            "unserved_kw": float(report.unserved_kw),
            "premium_uptime_pct": min(tier_uptime.get("premium", [100.0])),
            "contracts_preempted": len(report.preempted),
            "lower_tier_contracts_down": sum(
                1 for r in contract_rows if r["tier"] != "premium" and r["unserved_kw"] > 0
            ),
            "credits_owed_usd": float(credits_usd),
            "profit_before_usd": before.totals.profit_usd,
            "profit_after_usd": after.totals.profit_usd,
            "engine_shortfalls_after": len(after.shortfalls),
            "open_placements_on_site": open_on_site,
            "migrations_during": sum(1 for d in during["decisions"] if d["moved"]),
            "replaced_during_kw": float(sum(kw for _, _, kw in during["replaced"])),
            "migrations_priced_at_return": len(returned["decisions"]),
            "placements_returned": sum(1 for d in moved_back if d["kind"] == "return"),
            "placements_migrated_at_return": sum(1 for d in moved_back if d["kind"] == "migration"),
            "replaced_at_return_kw": float(sum(kw for _, _, kw in returned["replaced"])),
            "return_saving_usd": sum(d["saving_usd"] for d in moved_back),
            "return_cost_usd": sum(d["cost"]["total_usd"] for d in moved_back),
        }
        site_kw_before = (before.ledger.it_kw * before_problem.period_hours).sum(axis=1) / hours
        site_kw_after = (after.ledger.it_kw * after_problem.period_hours).sum(axis=1) / hours
        notes.append(
            f"Failover: {report}. The failover moves each placement for the rest of its contract; uptime and credits "
            f"assume the {hours} h window is the month's only outage."
        )
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
        if not apply:
            transaction.set_rollback(True)
        else:
            notes.append(f"Applied: {code} stays in maintenance; placements, notices and downtimes are stored.")
    rows = contract_rows or [{"contract": "-", "tier": "-", "moved_kw": 0.0}]
    return ScenarioResult(
        scenario="maintenance",
        title=f"Maintenance: {code} for {hours} h",
        start=start,
        hours=hours,
        rows=rows,
        summary=summary,
        chart={
            "title": f"Average IT kW by site, before and during maintenance of {code}",
            "x_label": "site",
            "y_label": "IT kW",
            "x": list(before_world.site_codes),
            "lines": {"before": site_kw_before.tolist(), "during maintenance": site_kw_after.tolist()},
            "kind": "bar",
        },
        notes=notes,
        applied=apply,
        seconds=time.perf_counter() - began,
    )
