"""Chainable reads of the commercial world."""

from __future__ import annotations

from datetime import datetime

from django.contrib.postgres.fields import DateTimeRangeField
from django.db import connections, models
from django.db.models import DecimalField, ExpressionWrapper, F, Func, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Least

from .choices import OPEN_CONTRACT_STATUSES, ContractStatus

KW = DecimalField(max_digits=16, decimal_places=3)  # the output type of sums of kW
KW_MINUTES = DecimalField(max_digits=20, decimal_places=3)


class QuoteQuerySet(models.QuerySet):
    def for_user(self, user) -> QuoteQuerySet:
        """Staff see every quote; a customer only its own; anyone else nothing."""
        if user.is_staff:
            return self
        return self.filter(customer__user=user)


class ContractQuerySet(models.QuerySet):
    def for_user(self, user) -> ContractQuerySet:
        """Staff see every contract; a customer only its own; anyone else nothing."""
        if user.is_staff:
            return self
        return self.filter(customer__user=user)

    def open(self) -> ContractQuerySet:
        return self.filter(status__in=(ContractStatus.REQUESTED, ContractStatus.ACTIVE))

    def overlapping(self, start: datetime, end: datetime) -> ContractQuerySet:
        return self.filter(starts_at__lt=end, ends_at__gt=start)

    def due_to_end(self, now: datetime) -> ContractQuerySet:
        return self.filter(status=ContractStatus.ACTIVE, ends_at__lte=now)

    def due_to_start(self, now: datetime) -> ContractQuerySet:
        """Admitted requests whose window has begun (admitted_at is set only by admission control)."""
        return self.filter(status=ContractStatus.REQUESTED, admitted_at__isnull=False, starts_at__lte=now)

    def with_details(self) -> ContractQuerySet:
        """Prefetch what the API shows of a contract into lists (`to_attr`): `placement_list` (with sites, in
        order), `service_credit_list`, `preemption_notice_list`, `downtime_list`. Four queries for any page;
        admission sets the same attributes on a contract it has just written (nothing to read back)."""
        from .models import Downtime, Placement, PreemptionNotice, ServiceCredit

        placements = Placement.objects.select_related("site", "moved_from").order_by("valid_from", "id")
        return self.prefetch_related(
            models.Prefetch("placements", queryset=placements, to_attr="placement_list"),
            models.Prefetch("service_credits", queryset=ServiceCredit.objects.order_by("-month"),
                            to_attr="service_credit_list"),
            models.Prefetch("preemption_notices", queryset=PreemptionNotice.objects.select_related("site"),
                            to_attr="preemption_notice_list"),
            models.Prefetch("downtimes", queryset=Downtime.objects.select_related("site"), to_attr="downtime_list"),
        )  # fmt: skip

    def with_placed_kw(self, now: datetime) -> ContractQuerySet:
        """Annotate `placed_kw_now`: the kW its placements hold at `now` (a correlated subquery, no GROUP BY)."""
        from .models import Placement

        placed = (
            Placement.objects.current(now)
            .filter(contract=OuterRef("pk"))
            .order_by()
            .values("contract")
            .annotate(total=Sum("capacity_kw"))
            .values("total")
        )
        return self.annotate(placed_kw_now=Coalesce(Subquery(placed, output_field=KW), Value(0, output_field=KW)))

    def with_uptime(self) -> ContractQuerySet:
        """Annotate `delivered_kw_minutes` and `committed_kw_minutes` over every delivery record so far.

        Delivered counts at most what was committed in each interval (Least), so over-delivery never repays a
        shortfall. Two correlated subqueries in the same SELECT: no extra query, no GROUP BY on the contracts.
        """
        from .models import ContractDelivery

        per_contract = ContractDelivery.objects.filter(contract=OuterRef("pk")).order_by().values("contract")
        served = ExpressionWrapper(Least("delivered_kw", "committed_kw") * F("interval_minutes"), KW_MINUTES)
        committed = ExpressionWrapper(F("committed_kw") * F("interval_minutes"), KW_MINUTES)
        zero = Value(0, output_field=KW_MINUTES)
        return self.annotate(
            delivered_kw_minutes=Coalesce(
                Subquery(per_contract.annotate(total=Sum(served)).values("total"), output_field=KW_MINUTES), zero
            ),
            committed_kw_minutes=Coalesce(
                Subquery(per_contract.annotate(total=Sum(committed)).values("total"), output_field=KW_MINUTES), zero
            ),
        )

    def uptime_by_tier(self, *, since: datetime):
        """Rows of (tier code, delivered kW-minutes, committed kW-minutes) over deliveries from `since` on.

        One grouped query over the delivery records (filter before annotate: only deliveries in the window are
        summed); delivered counts at most what was committed in each interval, as in `with_uptime`.
        """
        minutes = F("deliveries__interval_minutes")
        served = ExpressionWrapper(Least("deliveries__delivered_kw", "deliveries__committed_kw") * minutes, KW_MINUTES)
        committed = ExpressionWrapper(F("deliveries__committed_kw") * minutes, KW_MINUTES)
        return (
            self.filter(deliveries__interval_start__gte=since)
            .order_by()
            .values("tier__code")
            .annotate(delivered_kw_minutes=Sum(served), committed_kw_minutes=Sum(committed))
            .values_list("tier__code", "delivered_kw_minutes", "committed_kw_minutes")
        )


class TimeRange(Func):
    """PostgreSQL's half-open `tstzrange(lower, upper, '[)')` (upper NULL: unbounded). The bounds flag is written
    into the SQL, not passed as a parameter, so the expression matches the index `sla_placement_window_gist`."""

    function = "tstzrange"
    template = "%(function)s(%(expressions)s, '[)')"
    output_field = DateTimeRangeField()


class Unestimated(Func):
    """`(SELECT expression)`: the same value, computed once per statement (PostgreSQL: an InitPlan), but one the
    planner cannot look into when it estimates rows, so a statement comparing with it is costed the same for any
    value (see `PlacementQuerySet.overlapping`)."""

    template = "(SELECT %(expressions)s)"


class PlacementQuerySet(models.QuerySet):
    def current(self, at: datetime) -> PlacementQuerySet:
        return self.filter(Q(valid_to__isnull=True) | Q(valid_to__gt=at), valid_from__lte=at)

    def overlapping(self, start: datetime, end: datetime | None, *, plan_once: bool = False) -> PlacementQuerySet:
        """Placements holding kW at some moment of [start, end); `end` None means open-ended.

        On PostgreSQL the windows are compared as ranges (`&&`), which the GiST index of migration 0005 answers
        in O(log n): admission runs this on every request, and two B-tree bounds cannot both be selective.

        `plan_once` (for reads prepared on the server, of short windows): the requested range is `Unestimated`,
        so PostgreSQL costs the statement alike for every window and keeps its generic plan (the same GiST scan)
        after five calls. Otherwise a window shorter than the 1 % of placements a generic plan assumes makes each
        custom plan look cheaper, and the statement is planned again on every call. The generic plan is made with
        the statistics of its time (a sequential scan while the table is nearly empty) until the next ANALYZE.
        """
        if connections[self.db].vendor == "postgresql":
            moment = models.DateTimeField()
            requested: Func = TimeRange(Value(start, output_field=moment), Value(end, output_field=moment))
            if plan_once:
                requested = Unestimated(requested)
            return self.alias(window=TimeRange(F("valid_from"), F("valid_to"))).filter(window__overlap=requested)
        window = Q(valid_to__isnull=True) | Q(valid_to__gt=start)
        return self.filter(window) if end is None else self.filter(window, valid_from__lt=end)

    def committed(self) -> PlacementQuerySet:
        """Placements of contracts that still hold capacity (requested and admitted, or active)."""
        return self.filter(contract__status__in=OPEN_CONTRACT_STATUSES)

    def holding(self) -> PlacementQuerySet:
        """`committed()` without its join, for admission's reads of every quote and purchase: the placement's own
        field `held`, which the database keeps from its contract's status for every writer (migration 0013), as it
        keeps `spot` from the tier. A plain filter, so it composes like any other (subqueries, unions)."""
        return self.filter(held=True)
