"""Quotes and admission control: a promise is made only when every chosen site can keep it.

Every admission locks Site rows (SELECT ... FOR UPDATE, in pk order) and only then reads what is committed on them,
so concurrent admissions on a site are serialized and no site is ever booked past its limit at any moment of a
contract's window. A new contract comes with a plan (its quote's, or one made without locks), is written first, and
then locks the plan's sites only to check that the plan still fits with its own placements counted: the locks are
held for one read and the commit, and admissions on other sites do not wait for them. A firm contract that fits
there only by displacing Spot displaces it on those sites, under those locks. When the plan no longer fits (firm
capacity went meanwhile, a site went), that write is rolled back and admission plans again under the locks of the
whole fleet, from the bookings themselves. The arithmetic (peaks, plans, prices) is pure: `sla.capacity`."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, IntegrityError, OperationalError, transaction
from django.db.models import (
    DateTimeField,
    DecimalField,
    ExpressionWrapper,
    F,
    OuterRef,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, Greatest, Least
from django.utils import timezone
from simple_history.utils import get_history_manager_for_model, get_history_model_for_model

from core.auth import signed_in
from core.db import LocalReadCache, PreparedInsert, PreparedInsertWithChildren, PreparedRead, aware, decimal
from sites.choices import HardwareKind
from sites.models import HardwareModel, MarketPrice, Site, SiteInventory
from sites.simulation import derive_climate_profile
from sites.simulation.cooling import LIQUID_TYPES, hall_cooling, pue

from .. import capacity
from ..capacity import Booking, NoPlacement, SiteRoom, WindowLoad
from ..choices import ContractStatus
from ..models import (
    Contract,
    Customer,
    Placement,
    PreemptionNotice,
    Quote,
    Tier,
)
from ..querysets import KW
from .caps import check_customer_cap, lock_customer
from .lifecycle import IllegalTransition

logger = logging.getLogger(__name__)

ZERO = Decimal("0")
TOKENS = DecimalField(max_digits=20, decimal_places=2)
QUOTE_VALIDITY = timedelta(minutes=15)
ADMISSION_ATTEMPTS = 3  # a deadlock with a non-admission transaction (e.g. a site-status change) is retried


class AdmissionRefused(Exception):
    """No placement can keep the promise (capacity is short); the message says why."""


class QuoteUnavailable(Exception):
    """The quote expired, or was already used for a contract."""


class _PlanNoLongerFits(Exception):
    """Checked under the locks, a plan made before them overloads a site (or would displace Spot)."""


@dataclass(frozen=True)
class PlannedShare:
    """A share of a plan made before the locks: `capacity_kw` on the site `site_id` (known then as `code`)."""

    site_id: int
    code: str
    name: str
    capacity_kw: Decimal

    @classmethod
    def of(cls, share: capacity.Share) -> PlannedShare:
        return cls(share.site.site_id, share.site.code, share.site.name, share.capacity_kw)

    @classmethod
    def from_quote(cls, sites: list[dict]) -> list[PlannedShare] | None:
        """The plan a quote was priced on (`Quote.sites`), or None for a quote stored without site ids."""
        try:
            return [cls(int(s["site_id"]), s["site"], s["name"], Decimal(s["capacity_kw"])) for s in sites] or None
        except (KeyError, TypeError, ValueError, ArithmeticError):
            return None


@dataclass(frozen=True)
class CapacityRequest:
    """What a customer asks for: this tier, this many kW of inference, over [starts_at, ends_at)."""

    tier: Tier
    capacity_kw: Decimal
    starts_at: datetime
    ends_at: datetime
    region_preference: str = ""

    @property
    def duration_hours(self) -> Decimal:
        return Decimal((self.ends_at - self.starts_at).total_seconds()) / 3600

    def shifted_to(self, start: datetime) -> CapacityRequest:
        """The same duration, starting at `start` (a quote bought after its start time still gets its hours)."""
        return CapacityRequest(
            tier=self.tier,
            capacity_kw=self.capacity_kw,
            starts_at=start,
            ends_at=start + (self.ends_at - self.starts_at),
            region_preference=self.region_preference,
        )


# Reads of admission control run on every quote and admission: compiled once per process (core.db).
# So are the INSERTs of a quote, a contract and its placements (core.db.PreparedInsert: as save / bulk_create); a
# new contract and its placements are one statement on PostgreSQL (core.db.PreparedInsertWithChildren).
# A quote commits without a WAL flush of its own (docs/api-performance.md, "a quote's commit without a flush of its
# own"): the purchase's COMMIT flushes the WAL up to its own commit record, the quote's with it.
# `keep_cursor` (core.db.statement_rows): the hot path's statements whose answer stays small as the book grows (a
# few keys; the sites; one row per site) keep their driver cursor per connection; the bookings reads keep none.
QUOTE_INSERT = PreparedInsert(Quote, asynchronous_commit=True, keep_cursor=True)
CONTRACT_INSERT = PreparedInsert(Contract, keep_cursor=True)
PLACEMENT_INSERT = PreparedInsert(Placement, keep_cursor=True)
# The contract, its placements and its history row (built by simple-history) in one statement on PostgreSQL
CONTRACT_WITH_PLACEMENTS_INSERT = PreparedInsertWithChildren(
    Contract, Placement, "contract", history=get_history_model_for_model(Contract), keep_cursor=True
)


def _fleet_queryset(*, lock: bool) -> QuerySet:
    inference = (
        SiteInventory.objects.filter(site=OuterRef("pk"), hardware_model__kind=HardwareKind.INFERENCE)
        .order_by()
        .values("site")
    )
    power = ExpressionWrapper(F("units_available") * F("hardware_model__power_kw_per_unit"), output_field=KW)
    tokens = ExpressionWrapper(F("units_available") * F("hardware_model__tokens_per_s"), output_field=TOKENS)
    newest_price = MarketPrice.objects.order_by("-interval_start").values("inference_price_usd_per_mtok")[:1]
    # Liquid-cooled inference hardware runs in its own loop's hall; the rest in the site's air hall (hall_cooling).
    liquid_kw = {
        f"inference_kw_{loop}": Coalesce(
            Subquery(
                inference.filter(hardware_model__cooling_type=loop).annotate(total=Sum(power)).values("total"),
                output_field=KW,
            ),
            Value(ZERO, KW),
        )
        for loop in LIQUID_TYPES
    }
    sites = (
        Site.objects.online()
        .annotate(
            inference_kw=Coalesce(
                Subquery(inference.annotate(total=Sum(power)).values("total"), output_field=KW), Value(ZERO, KW)
            ),
            inference_tokens_per_s=Coalesce(
                Subquery(inference.annotate(total=Sum(tokens)).values("total"), output_field=TOKENS),
                Value(ZERO, TOKENS),
            ),
            token_price=Subquery(newest_price, output_field=TOKENS),
            **liquid_kw,
        )
        .order_by("pk")
        .values_list(
            "pk",
            "code",
            "name",
            "market_region",
            "energy_cost_multiplier",
            "power_capacity_kw",
            "cooling_type",
            "latitude",
            "climate_zone",
            "time_zone",
            "inference_kw",
            "inference_tokens_per_s",
            "token_price",
            *liquid_kw,
        )
    )
    return sites.select_for_update(of=("self",)) if lock else sites


FLEET_READS = {
    lock: PreparedRead(functools.partial(_fleet_queryset, lock=lock), keep_cursor=True) for lock in (False, True)
}
# The unlocked read, kept a few seconds per process for planning quotes (what it reads changes when staff edit a
# site or its hardware, or every few minutes for the token price).
FLEET = LocalReadCache("fleet", models=(Site, SiteInventory, HardwareModel, MarketPrice))


def _some_sites_queryset(**site_ids: int) -> QuerySet:
    return _fleet_queryset(lock=True).filter(pk__in=list(site_ids.values()))


def _per_number_of_sites(
    build: Callable[..., QuerySet], template: str = "{query}", *, keep_cursor: bool, **params: type
) -> dict[int, PreparedRead]:
    """One compiled read per number of sites (1 to MAX_SITES_PER_CONTRACT), the site ids as parameters `site_0`,
    `site_1`, ... (`_site_values`): each statement's text stays fixed, and so server-side prepared."""
    return {
        count: PreparedRead(
            build, template=template, keep_cursor=keep_cursor, **params, **{f"site_{i}": int for i in range(count)}
        )
        for count in range(1, capacity.MAX_SITES_PER_CONTRACT + 1)
    }


def _site_values(ids: Sequence[int]) -> dict[str, int]:
    """The parameters of a `_per_number_of_sites` read for these site ids."""
    return {f"site_{i}": pk for i, pk in enumerate(ids)}


def _on_sites(queryset: QuerySet, site_ids: Iterable[int]) -> QuerySet:
    """Placements of `queryset` on these sites only. The sites only sift what the window's GiST index finds: on a
    bare `site_id` the planner may AND in the (site, valid_from, valid_to) B-tree, i.e. every placement ever made
    on the site, which grows with the book."""
    return queryset.alias(booked_site=F("site_id") + Value(0)).filter(booked_site__in=list(site_ids))


# Locking the sites of one plan (up to MAX_SITES_PER_CONTRACT of them), one compiled read per number of sites.
SOME_SITES_READS = _per_number_of_sites(_some_sites_queryset, keep_cursor=True)


@dataclass
class Fleet:
    """The online sites that can carry SLA capacity, and the newest token price (None when none is stored)."""

    rooms: list[SiteRoom]
    token_price_usd_per_mtok: Decimal | None


def read_fleet(*, lock: bool, only: Sequence[int] = (), recent: bool = False) -> Fleet:
    """Online sites able to run inference with their SLA limit, plus the newest token price; one query.

    A site's SLA limit is what its available inference hardware can carry (sum of units_available x kW per unit
    over inference models), bounded by the IT power its facility power leaves at the PUE of the hall that hardware
    runs in (`sites.simulation.hall_cooling`: GPU nodes at a liquid-cooled site sit in a chilled air hall) on its
    climate's hot design day (`design_pue`): a promise must hold on a summer afternoon too, not only at tonight's
    PUE (`capacity.hall_limit_kw`).
    With `lock`, the Site rows are locked FOR UPDATE in pk order: every admission and failover takes the same
    locks in the same order, so they serialize without deadlocking each other, and the placements summed
    afterwards cannot change under the caller.
    The inventory sums are scalar subqueries because PostgreSQL refuses FOR UPDATE next to GROUP BY.
    With `only` (and the lock), only those sites are read and locked, still in pk order.
    With `recent` (and no lock), the sites may be a few seconds old (`FLEET`, kept per process, with the limits
    worked out from them): for plans made without locks, which admission checks again under them.
    """
    if only:
        if not lock or len(set(only)) > capacity.MAX_SITES_PER_CONTRACT:
            raise ValueError("`only` locks up to MAX_SITES_PER_CONTRACT sites")
        ids = sorted(set(only))
        spec = _fleet_spec(SOME_SITES_READS[len(ids)].rows(**_site_values(ids)))
    elif recent and not lock:
        spec = FLEET.get("online", lambda: _fleet_spec(FLEET_READS[False].rows()))
    else:
        spec = _fleet_spec(FLEET_READS[lock].rows())
    rooms = [SiteRoom(*room) for room in spec.rooms]  # new rooms each time: callers fill in their bookings
    return Fleet(rooms=rooms, token_price_usd_per_mtok=newest_token_price() if spec.empty else spec.token_price)


@dataclass(frozen=True)
class _FleetSpec:
    """What `read_fleet` works out from its rows, immutable so that `FLEET` can keep it: the arguments of each
    room's SiteRoom (sites with a limit above zero, in pk order) and the token price, or `empty` when no online
    site was read (the token price is then read on its own)."""

    rooms: tuple[tuple, ...]
    token_price: Decimal | None
    empty: bool


def _fleet_spec(rows: Sequence[tuple]) -> _FleetSpec:
    rooms = []
    token_price = None
    for row in rows:
        pk, code, name, region, cost, power_kw, cooling, lat, zone, tz, inference_kw, tokens_per_s, price, *liquid = row
        token_price = None if price is None else decimal(price)
        inference_kw = decimal(inference_kw).quantize(capacity.KW_STEP)
        limit = _site_limit(decimal(power_kw), tuple(liquid), inference_kw, cooling, float(lat), zone, tz)
        if limit > 0:
            rooms.append((pk, code, name, region, decimal(cost), limit, decimal(tokens_per_s) / inference_kw))
    return _FleetSpec(rooms=tuple(rooms), token_price=token_price, empty=not rows)


@functools.lru_cache(maxsize=1024)
def _site_limit(
    power_kw: Decimal, liquid_kw: tuple, inference_kw: Decimal, cooling: str, latitude: float, zone: str, tz: str
) -> Decimal:
    """A site's SLA limit (`capacity.hall_limit_kw` over its `_halls`) from what its row says, worked out once per
    process for the same values: every purchase reads and locks its plan's sites anew, and their limits are the same
    until their power, hardware or place changes. A pure function of its arguments' values, whose answer is rounded
    down to the watt, so value-equal arguments (Decimal("0") and Decimal("0.000")) give the same digits."""
    return capacity.hall_limit_kw(power_kw, _halls(liquid_kw, inference_kw, cooling, latitude, zone, tz))


def _halls(
    liquid_kw: Sequence, inference_kw: Decimal, cooling: str, latitude: float, zone: str, tz: str
) -> list[tuple[Decimal, Decimal]]:
    """`(IT kW, design PUE)` of each hall holding a site's inference hardware: the kW in each liquid loop
    (`liquid_kw`, in LIQUID_TYPES' order), the rest in the site's air hall."""
    liquid = dict(zip(LIQUID_TYPES, (decimal(kw) for kw in liquid_kw), strict=True))
    by_hall = {loop: kw for loop, kw in liquid.items() if kw > 0}
    by_hall[hall_cooling(cooling, "air", HardwareKind.INFERENCE)] = inference_kw - sum(liquid.values(), ZERO)
    return [(kw, design_pue(hall, float(latitude), zone, tz)) for hall, kw in by_hall.items()]


@functools.cache
def design_pue(cooling_type: str, latitude: float, climate_zone: str, time_zone: str) -> Decimal:
    """PUE of a site's cooling on its climate's hot design day (ClimateProfile.design_temperature_c)."""
    profile = derive_climate_profile(latitude=latitude, climate_zone=climate_zone, time_zone=time_zone)
    return Decimal(f"{float(pue(cooling_type, profile.design_temperature_c)):.6f}")


def candidate_sites(*, lock: bool) -> list[SiteRoom]:
    """The rooms of `read_fleet`: online sites with their SLA limit (see there)."""
    return read_fleet(lock=lock).rooms


def _bookings_queryset(start: datetime, end: datetime | None = None) -> QuerySet:
    return (
        Placement.objects.holding()
        .overlapping(start, end)
        .order_by()
        .values_list("site_id", "capacity_kw", "valid_from", "valid_to", "spot", "pk", "contract_id")
    )


# Every placement overlapping the window: grows with the book, so no kept cursor holds it (core.db.PreparedRead).
BOOKINGS_READ = PreparedRead(_bookings_queryset, start=datetime, end=datetime)
OPEN_ENDED_BOOKINGS_READ = PreparedRead(_bookings_queryset, start=datetime)


def _some_sites_bookings_queryset(start: datetime, end: datetime, **site_ids: int) -> QuerySet:
    return _on_sites(_bookings_queryset(start, end), site_ids.values())


# The bookings of one plan's sites only (a purchase displacing Spot under their locks).
SOME_SITES_BOOKINGS_READS = _per_number_of_sites(
    _some_sites_bookings_queryset, keep_cursor=False, start=datetime, end=datetime
)


def load_bookings(
    rooms: Iterable[SiteRoom], *, start: datetime, end: datetime | None, only: Sequence[int] = ()
) -> None:
    """Fill each room's `bookings` with the placements of open contracts overlapping [start, end); one query.

    Placements on other sites (offline, in maintenance) are read too and ignored: filtering them in SQL would
    make the statement vary with the list of sites and defeat its compile-once (and server-side prepared) form.
    With `only` (up to MAX_SITES_PER_CONTRACT site ids, and an `end`), only the placements on those sites are
    read, by a statement fixed per number of sites.
    """
    by_id = {room.site_id: room for room in rooms}
    if only:
        ids = sorted(set(only))
        if end is None or len(ids) > capacity.MAX_SITES_PER_CONTRACT:
            raise ValueError("`only` reads up to MAX_SITES_PER_CONTRACT sites over a window with an end")
        rows = SOME_SITES_BOOKINGS_READS[len(ids)].rows(start=start, end=end, **_site_values(ids))
    elif end is None:
        rows = OPEN_ENDED_BOOKINGS_READ.rows(start=start)
    else:
        rows = BOOKINGS_READ.rows(start=start, end=end)
    for site_id, kw, valid_from, valid_to, preemptible, pk, contract_id in rows:
        room = by_id.get(site_id)
        if room is None:
            continue
        room.bookings.append(
            Booking(
                site_id=site_id,
                capacity_kw=decimal(kw),
                starts_at=aware(valid_from),
                ends_at=aware(valid_to),
                preemptible=bool(preemptible),
                placement_id=pk,
                contract_id=contract_id,
            )
        )


MOMENT = DateTimeField()


def _window_bookings_queryset(start: datetime, end: datetime) -> QuerySet:
    """Committed placements overlapping [start, end), clipped to it: (site, held from, held to, kW, is Spot)."""
    start_value, end_value = Value(start, output_field=MOMENT), Value(end, output_field=MOMENT)
    return (
        Placement.objects.holding()
        .overlapping(start, end, plan_once=True)
        .order_by()
        .annotate(
            held_from=Greatest("valid_from", start_value),
            held_to=Least(Coalesce("valid_to", end_value), end_value),
        )
        .values_list("site_id", "held_from", "held_to", "capacity_kw", "spot")
    )


# Peak firm and total kW per site over a window, as `capacity.peak_kw` sweeps them: each booking holds its kW from
# its start (+kW) to its end (-kW); a running sum in time order, and the largest value per site. The sum at a
# moment takes all the events of that moment together (the default RANGE frame: its peers), so a booking ending
# when another starts never counts twice (half-open windows). That sorts by moment alone, cheaper than by moment
# and kW (a ROWS frame, releases first), whose extra sums part-way through one moment are never the largest.
# The database returns one row per booked site instead of every booking, so the cost in Python does not grow with
# the number of contracts.
WINDOW_PEAKS_SQL = """
WITH booked (site_id, held_from, held_to, kw, spot) AS ({query})
SELECT site_id, MAX(firm_kw), MAX(total_kw) FROM (
    SELECT site_id,
           SUM(CASE WHEN spot THEN 0 ELSE kw END) OVER sweep AS firm_kw,
           SUM(kw) OVER sweep AS total_kw
    FROM (
        SELECT site_id, held_from AS moment, kw, spot FROM booked
        UNION ALL
        SELECT site_id, held_to AS moment, -kw AS kw, spot FROM booked
    ) events
    WINDOW sweep AS (PARTITION BY site_id ORDER BY moment)
) running
GROUP BY site_id
"""
WINDOW_PEAKS_READ = PreparedRead(
    _window_bookings_queryset, template=WINDOW_PEAKS_SQL, keep_cursor=True, start=datetime, end=datetime
)


def _sites_window_bookings_queryset(start: datetime, end: datetime, **site_ids: int) -> QuerySet:
    return _on_sites(_window_bookings_queryset(start, end), site_ids.values())


# The same peaks on the sites of one plan only (a purchase, under their locks). The sweep is per site, so a site's
# peaks do not depend on which other sites are read.
SOME_SITES_PEAKS_READS = _per_number_of_sites(
    _sites_window_bookings_queryset, template=WINDOW_PEAKS_SQL, keep_cursor=True, start=datetime, end=datetime
)


def load_window_peaks(rooms: Iterable[SiteRoom], *, start: datetime, end: datetime, only: Sequence[int] = ()) -> None:
    """Set each room's `load`: the peak firm and total kW committed on it over [start, end); one query.

    With `only` (up to MAX_SITES_PER_CONTRACT site ids, those of every room given), only the placements on those
    sites are read: a purchase checks the sites it locked, and what it reads does not grow with the bookings on
    the rest of the fleet.
    What planning and pricing need (`capacity.plan_placement`, `utilization_pct`), without the bookings; displacing
    Spot needs the bookings themselves (`load_bookings`)."""
    if only:
        ids = sorted(set(only))
        rooms = list(rooms)
        if len(ids) > capacity.MAX_SITES_PER_CONTRACT or any(room.site_id not in ids for room in rooms):
            raise ValueError("`only` names up to MAX_SITES_PER_CONTRACT sites, those of every room")
        rows = SOME_SITES_PEAKS_READS[len(ids)].rows(start=start, end=end, **_site_values(ids))
    else:
        rows = WINDOW_PEAKS_READ.rows(start=start, end=end)
    peaks = {site_id: (firm, total) for site_id, firm, total in rows}
    for room in rooms:
        firm, total = peaks.get(room.site_id, (ZERO, ZERO))
        room.load = WindowLoad(start, end, _kw_read(firm), _kw_read(total))


def _kw_read(value) -> Decimal:
    """A summed kW from the database (SQLite sums floats) as kW to the stored precision, never below zero."""
    return max(decimal(value).quantize(capacity.KW_STEP), ZERO)


def newest_token_price() -> Decimal | None:
    """USD per million tokens of the newest stored market interval, or None when none is stored."""
    return (
        MarketPrice.objects.order_by("-interval_start").values_list("inference_price_usd_per_mtok", flat=True).first()
    )


def _plan(rooms: list[SiteRoom], request: CapacityRequest) -> list[capacity.Share]:
    tier = request.tier
    try:
        return capacity.plan_placement(
            rooms,
            capacity_kw=request.capacity_kw,
            start=request.starts_at,
            end=request.ends_at,
            min_sites=tier.min_sites,
            n_minus_1=tier.requires_n_minus_1,
            preemptible=tier.is_preemptible,
            region_preference=request.region_preference,
            tier_name=tier.name,
        )
    except NoPlacement as exc:
        raise AdmissionRefused(str(exc)) from None


def _price(plan: list[capacity.Share], request: CapacityRequest, token_price: Decimal | None) -> capacity.Price:
    return capacity.price_for(
        plan,
        capacity_kw=request.capacity_kw,
        duration_hours=request.duration_hours,
        tier_multiplier=request.tier.price_multiplier,
        token_price_usd_per_mtok=token_price,
        start=request.starts_at,
        end=request.ends_at,
        preemptible=request.tier.is_preemptible,
        base_rate_usd_per_kw_month=base_rate_usd_per_kw_month(),
    )


def base_rate_usd_per_kw_month() -> Decimal:
    """The rate card's 1.0x rate, USD per kW-month (setting SLA_BASE_RATE_USD_PER_KW_MONTH, docs/economics.md)."""
    return Decimal(str(settings.ENERGYARB["SLA_BASE_RATE_USD_PER_KW_MONTH"])).quantize(capacity.CENT)


def _plan_sites(plan: list[capacity.Share]) -> list[dict]:
    return [
        {
            "site_id": share.site.site_id,
            "site": share.site.code,
            "name": share.site.name,
            "market_region": share.site.market_region,
            "capacity_kw": str(share.capacity_kw),
        }
        for share in plan
    ]


def create_quote(*, customer: Customer, request: CapacityRequest) -> Quote:
    """Price a request on the placement it would get now, and keep the offer for QUOTE_VALIDITY.

    Reads without locks (a quote reserves nothing) and raises AdmissionRefused when no placement exists.
    Refused too (AdmissionRefused) when it would take the customer past its cap (sla.services.caps).
    Cost: the peaks committed on the sites (1; the sites, their limits and the token price are kept a few seconds
    per process), the customer's contracts for its cap (1), one insert; outside a transaction the insert commits
    at once, without waiting for a WAL flush of its own (QUOTE_INSERT: the purchase's COMMIT makes it durable).
    """
    plan, price = _plan_without_locks(request)
    _refuse_over_cap(customer.pk, request)
    quote = QUOTE_INSERT.new(
        customer=customer,
        tier=request.tier,
        capacity_kw=request.capacity_kw,
        starts_at=request.starts_at,
        ends_at=request.ends_at,
        region_preference=request.region_preference,
        token_price_usd_per_mtok=price.token_price_usd_per_mtok,
        token_price_source=price.token_price_source,
        tokens_per_s_per_kw=price.tokens_per_s_per_kw,
        base_value_usd_per_kwh=price.base_value_usd_per_kwh,
        tier_multiplier=price.tier_multiplier,
        utilization_pct=price.utilization_pct,
        utilization_factor=price.utilization_factor,
        price_usd_per_kwh=price.price_usd_per_kwh,
        total_usd=price.total_usd,
        base_rate_usd_per_kw_month=price.base_rate_usd_per_kw_month,
        price_usd_per_kw_month=price.price_usd_per_kw_month,
        sites=_plan_sites(plan),
        valid_until=timezone.now() + QUOTE_VALIDITY,
    )
    (saved,) = QUOTE_INSERT.insert([quote])  # one INSERT ... RETURNING, as save(force_insert=True): no BEGIN/COMMIT
    return saved


def fleet_sla_kw(fleet: Fleet) -> Decimal:
    """The fleet's SLA capacity: the sum of its online sites' SLA limits (what the per-customer cap is a share of)."""
    return sum((room.limit_kw for room in fleet.rooms), ZERO)


def _recent_fleet_kw() -> Decimal:
    return fleet_sla_kw(read_fleet(lock=False, recent=True))


def _refuse_over_cap(
    customer_id: int,
    request: CapacityRequest,
    *,
    fleet_kw: Callable[[], Decimal] = _recent_fleet_kw,
    contract_id: int | None = None,
) -> None:
    """AdmissionRefused when `request` would take the customer past its cap (sla.services.caps); the fleet's SLA
    capacity is what `fleet_kw` gives (by default its online sites' limits, kept a few seconds per process)."""
    refusal = check_customer_cap(
        customer_id=customer_id,
        tier=request.tier,
        capacity_kw=request.capacity_kw,
        start=request.starts_at,
        end=request.ends_at,
        fleet_kw=fleet_kw,
        exclude_contract=contract_id,
    )
    if refusal:
        raise AdmissionRefused(refusal)


def contract_cap_refusal(contract: Contract) -> str | None:
    """For an open contract written outside admission (staff in the admin): lock its customer and check its cap in
    the caller's transaction (sla.services.caps); why it is refused, or None."""
    lock_customer(contract.customer_id, contract.tier)
    return check_customer_cap(
        customer_id=contract.customer_id,
        tier=contract.tier,
        capacity_kw=contract.capacity_kw,
        start=contract.starts_at,
        end=contract.ends_at,
        fleet_kw=_recent_fleet_kw,
        exclude_contract=contract.pk,
    )


def _plan_without_locks(request: CapacityRequest) -> tuple[list[capacity.Share], capacity.Price]:
    """The placement `request` would get now and its price, from the fleet (kept a few seconds per process) and
    the peaks committed on it (one read), without locks; AdmissionRefused when no placement exists."""
    fleet = read_fleet(lock=False, recent=True)
    load_window_peaks(fleet.rooms, start=request.starts_at, end=request.ends_at)
    plan = _plan(fleet.rooms, request)
    return plan, _price(plan, request, fleet.token_price_usd_per_mtok)


def create_contract(*, customer: Customer, request: CapacityRequest, actor=None) -> Contract:
    """Admit a request priced now, or raise AdmissionRefused; see `_admit` for the guarantees."""
    plan, price = _plan_without_locks(request)
    contract = CONTRACT_INSERT.new(
        customer=customer,
        tier=request.tier,
        capacity_kw=request.capacity_kw,
        region_preference=request.region_preference,
        quoted_price_usd_per_kwh=price.price_usd_per_kwh,
        quoted_total_usd=price.total_usd,
    )
    planned = [PlannedShare.of(share) for share in plan]
    return _admit(contract=contract, request=request, actor=actor, reason="admitted (API request)", planned=planned)


def create_contract_from_quote(*, quote: Quote, actor=None) -> Contract:
    """Admit the quoted request at the quoted price, or raise QuoteUnavailable / AdmissionRefused.

    The quote's placement is checked again under the locks, and planned anew when capacity went since the quote.
    A quote whose start has passed is bought for the same duration starting now. Two buyers of one quote: the
    unique Contract.quote lets exactly one insert succeed.
    """
    now = timezone.now()
    if not quote.is_valid_at(now):
        raise QuoteUnavailable(f"Quote {quote.pk} expired at {quote.valid_until:%Y-%m-%d %H:%M:%S} UTC.")
    request = CapacityRequest(
        tier=quote.tier,
        capacity_kw=quote.capacity_kw,
        starts_at=quote.starts_at,
        ends_at=quote.ends_at,
        region_preference=quote.region_preference,
    )
    if request.starts_at < now:
        request = request.shifted_to(now)
    contract = CONTRACT_INSERT.new(
        customer_id=quote.customer_id,
        tier=quote.tier,
        capacity_kw=quote.capacity_kw,
        region_preference=quote.region_preference,
        quote=quote,
        quoted_price_usd_per_kwh=quote.price_usd_per_kwh,
        quoted_total_usd=quote.total_usd,
        cancellation_fee_pct=quote.cancellation_fee_pct,  # the quote's terms
    )
    planned = PlannedShare.from_quote(quote.sites)
    reason = f"admitted (quote {quote.pk})"
    try:
        return _admit(contract=contract, request=request, actor=actor, reason=reason, planned=planned)
    except IntegrityError:  # the unique Contract.quote: bought before, or by a concurrent request
        raise QuoteUnavailable(f"Quote {quote.pk} was already used for a contract.") from None


def admit_contract(*, contract: Contract, actor=None) -> Contract:
    """Place an existing request (typed in by staff) through admission control, or raise AdmissionRefused.

    The contract keeps its quoted price; a window that has begun is placed from now on.
    """
    if contract.status != ContractStatus.REQUESTED or contract.admitted_at is not None:
        raise IllegalTransition(f"Contract {contract.pk} is not an unadmitted request.")
    now = timezone.now()
    if contract.ends_at <= now:
        raise AdmissionRefused(f"Contract {contract.pk} ended at {contract.ends_at:%Y-%m-%d %H:%M} UTC.")
    request = CapacityRequest(
        tier=contract.tier,
        capacity_kw=contract.capacity_kw,
        starts_at=max(contract.starts_at, now),
        ends_at=contract.ends_at,
        region_preference=contract.region_preference,
    )
    return _admit(contract=contract, request=request, actor=actor, reason="admitted by staff")


def _admit(
    *, contract: Contract, request: CapacityRequest, actor, reason: str, planned: list[PlannedShare] | None = None
) -> Contract:
    """Place `contract` for `request` so that no site exceeds its limit at any moment, and save it.

    A new contract with a plan made before the locks (`planned`) is written and then checked under them
    (`_admit_planned`); when the plan no longer fits, and for every other contract, admission plans under the
    locks (`_admit_once`). Retried on a deadlock (only possible against a transaction that locks sites out of pk
    order, such as a site status change followed by a failover); any other database error propagates.
    """
    template = contract if contract.pk is None else None
    for attempt in range(1, ADMISSION_ATTEMPTS + 1):
        if template is not None:  # each attempt writes its own copy: a rolled-back insert leaves the template new
            contract = CONTRACT_INSERT.copy(template)
        try:
            if planned and template is not None:
                try:
                    return _admit_planned(contract=contract, request=request, actor=actor, reason=reason, plan=planned)
                except _PlanNoLongerFits as exc:
                    logger.info("Admission plans again under the locks: the plan no longer fits on %s", exc)
                    planned = None
                    contract = CONTRACT_INSERT.copy(template)
            return _admit_once(contract=contract, request=request, actor=actor, reason=reason)
        except OperationalError as exc:
            if attempt == ADMISSION_ATTEMPTS or getattr(exc.__cause__, "sqlstate", None) not in ("40P01", "40001"):
                raise
            logger.warning("Admission retried after %s (attempt %d)", type(exc.__cause__).__name__, attempt)
    raise AssertionError("unreachable")


def _stamp(contract: Contract, request: CapacityRequest, *, now: datetime, reason: str) -> None:
    """Set the admitted window and state: active at once when the window has begun."""
    contract.starts_at, contract.ends_at = request.starts_at, request.ends_at
    contract.admitted_at = now
    if request.starts_at <= now:
        contract.status = ContractStatus.ACTIVE  # the window has begun: admitted and running at once
    contract.status_changed_at = now
    contract.status_reason = reason[:200]


@functools.cache
def _contract_history():
    """Contract's simple-history manager, built once per process: each `Contract.history` builds a new manager
    class (`Manager.from_queryset`, about 0.3 ms of CPU), which `bulk_create_with_history` would pay on every
    admission."""
    return get_history_manager_for_model(Contract)


def _insert(contract: Contract, placements: list[Placement], *, actor, reason: str) -> tuple[Contract, list[Placement]]:
    """A new contract with its placements (given without their contract) and its history record (who and why):
    the contract and the placements as `bulk_create` writes them, its history row as simple-history's
    `bulk_create_with_history` writes it, built by `bulk_history_create` (the per-instance save() machinery is not
    needed: contracts have no other save receivers) and handed to the history model's `objects.bulk_create`
    (sla.models.PreparedHistoryRows). On PostgreSQL the three are one statement (`CONTRACT_WITH_PLACEMENTS_INSERT`:
    the row held back there and written with the contract); elsewhere the contract and placements, then the row
    (a prepared INSERT). The unique quote still fails loudly (IntegrityError) on a second buyer, and nothing is
    written then. Inside admission's transaction. Returns the saved contract and placements."""
    user = signed_in(actor)

    def history(saved: Contract) -> None:
        _contract_history().bulk_history_create(
            [saved], default_user=user, default_change_reason=reason, default_date=saved.status_changed_at
        )

    return CONTRACT_WITH_PLACEMENTS_INSERT.insert(contract, placements, history=history)


def _placements(
    request: CapacityRequest, shares: list[tuple[int, Decimal]], reason: str, contract: Contract | None = None
) -> list[Placement]:
    """New placements of `shares` (site, kW) over the request's window; of `contract` when it is saved already."""
    return [
        PLACEMENT_INSERT.new(
            contract=contract,
            site_id=site_id,
            capacity_kw=kw,
            valid_from=request.starts_at,
            valid_to=request.ends_at,
            reason=reason[:200],
        )
        for site_id, kw in shares
    ]


SITE_NAMING = ["id", "code", "name"]  # the first of Site's fields, in its order (Model.from_db)


def _as_admitted(contract: Contract, placements: list[Placement], sites: dict[int, tuple[str, str]]) -> Contract:
    """`contract` as the API shows it right after admission, without querying anything back: the attributes
    `ContractQuerySet.with_details()` prefetches (a new contract has no credits, notices or downtimes yet).
    Each placement's site carries the code and name the plan knew it by; its other fields are deferred (loaded
    if something reads them), not the model's defaults."""
    for placement in placements:
        code, name = sites[placement.site_id]
        placement.site = Site.from_db(DEFAULT_DB_ALIAS, SITE_NAMING, (placement.site_id, code, name))
    contract.placement_list = placements
    contract.service_credit_list, contract.preemption_notice_list, contract.downtime_list = [], [], []
    contract.delivered_kw_minutes = contract.committed_kw_minutes = ZERO
    return contract


@transaction.atomic
def _admit_planned(
    *, contract: Contract, request: CapacityRequest, actor, reason: str, plan: list[PlannedShare]
) -> Contract:
    """Write a new contract on a plan made before the locks, then lock the sites and check that every one of the
    plan's sites still carries its peak, this contract's placements included; raise _PlanNoLongerFits (rolling
    the writes back) when one does not. A firm contract whose sites carry it without Spot (the firm peak fits)
    displaces that Spot right there, under the locks it holds (`_displace_on_plan`), as `_admit_once` would.

    The locks are taken after the writes, and only on the plan's sites, so they are held only for the check and
    the commit. That is enough: every admission checks, under the locks of its sites, everything committed on
    them before it, and commits before it releases them, so each committed placement was checked against all the
    others on its site.
    The customer's row is locked before the sites and its cap checked (sla.services.caps): purchases of one
    customer serialize there, so parallel ones cannot take it past its cap.
    Query cost: contract with its placements and its history row (1 on PostgreSQL, else 3), customer lock
    (1), the customer's contracts (1), lock + limits (1), peaks on the locked sites (1); displacing Spot adds the
    bookings of the crowded sites (1), a write per displaced placement and the notices (1).
    """
    now = timezone.now()
    _stamp(contract, request, now=now, reason=reason)
    shares = [(share.site_id, share.capacity_kw) for share in plan]
    contract, placements = _insert(contract, _placements(request, shares, reason), actor=actor, reason=reason)
    lock_customer(contract.customer_id, request.tier)
    _refuse_over_cap(contract.customer_id, request, contract_id=contract.pk)
    sites = [share.site_id for share in plan]
    rooms = {room.site_id: room for room in read_fleet(lock=True, only=sites).rooms}
    start, end = request.starts_at, request.ends_at
    load_window_peaks(rooms.values(), start=start, end=end, only=sites)
    crowded = []
    for share in plan:
        room = rooms.get(share.site_id)
        if room is None or room.code != share.code or room.peak_kw(start, end, firm_only=True) > room.limit_kw:
            raise _PlanNoLongerFits(share.code)
        if room.peak_kw(start, end) > room.limit_kw:  # only Spot overflows: a firm tier displaces it here
            if request.tier.is_preemptible:
                raise _PlanNoLongerFits(share.code)
            crowded.append((room, share.capacity_kw))
    if crowded:
        _displace_on_plan(crowded, contract=contract, request=request, now=now, actor=actor)
    return _as_admitted(contract, placements, {share.site_id: (share.code, share.name) for share in plan})


def _displace_on_plan(
    crowded: list[tuple[SiteRoom, Decimal]], *, contract: Contract, request: CapacityRequest, now: datetime, actor
) -> None:
    """Displace Spot from the plan's sites the caller locked, where `contract` (written, its placements
    included in the firm peak that fits) overflows only with Spot: as `_admit_once` does, from each site's
    bookings without this contract's own placements, and save the notices."""
    rooms = [room for room, _ in crowded]
    if len({room.site_id for room in rooms}) != len(rooms):  # one site twice in a plan: the fleet-wide way
        raise _PlanNoLongerFits(rooms[0].code)
    for room in rooms:
        room.load = None  # swept over the bookings from here on
    load_bookings(rooms, start=request.starts_at, end=request.ends_at, only=[room.site_id for room in rooms])
    notices = []
    for room, kw in crowded:
        room.bookings = [booking for booking in room.bookings if booking.contract_id != contract.pk]
        notices += _displace_for(contract, request, room, kw, now=now, actor=actor)
    PreemptionNotice.objects.bulk_create(notices)


@transaction.atomic
def _admit_once(*, contract: Contract, request: CapacityRequest, actor, reason: str) -> Contract:
    """One admission attempt under the locks: lock sites, read overlapping placements, plan, write.

    Query cost: customer lock (1), lock + limits + token price (1), the customer's contracts for its cap (1),
    overlapping placements (1), a new contract with its placements and its history row (1 on PostgreSQL, else 3),
    or an existing one's update, history row and placements (3); displacing Spot adds a few.
    """
    lock_customer(contract.customer_id, request.tier)
    fleet = read_fleet(lock=True)
    _refuse_over_cap(contract.customer_id, request, fleet_kw=lambda: fleet_sla_kw(fleet), contract_id=contract.pk)
    load_bookings(fleet.rooms, start=request.starts_at, end=request.ends_at)
    plan = _plan(fleet.rooms, request)
    if contract.quote_id is None and contract.admitted_at is None and contract.pk is None:
        price = _price(plan, request, fleet.token_price_usd_per_mtok)
        contract.quoted_price_usd_per_kwh = price.price_usd_per_kwh
        contract.quoted_total_usd = price.total_usd
    now = timezone.now()
    _stamp(contract, request, now=now, reason=reason)
    shares = [(share.site.site_id, share.capacity_kw) for share in plan]
    placements = None
    if contract.pk is None:
        contract, placements = _insert(contract, _placements(request, shares, reason), actor=actor, reason=reason)
    else:
        contract._history_user = signed_in(actor)
        contract._change_reason = reason
        contract.save()
    notices = []
    for share in plan:
        if not request.tier.is_preemptible:
            notices += _displace_for(contract, request, share.site, share.capacity_kw, now=now, actor=actor)
    if placements is None:  # an existing contract: its placements after the displaced Spot, as before
        placements = PLACEMENT_INSERT.insert(_placements(request, shares, reason, contract=contract))
    if notices:
        PreemptionNotice.objects.bulk_create(notices)
    sites = {share.site.site_id: (share.site.code, share.site.name) for share in plan}
    return _as_admitted(contract, placements, sites)


def _displace_for(
    contract: Contract, request: CapacityRequest, room: SiteRoom, capacity_kw: Decimal, *, now: datetime, actor
) -> list[PreemptionNotice]:
    """`displace_spot` for `contract`'s share of `capacity_kw` on `room`, over its request's window."""
    return displace_spot(
        room,
        start=request.starts_at,
        end=request.ends_at,
        capacity_kw=capacity_kw,
        now=now,
        by=contract,
        actor=actor,
        reason=f"displaced by {request.tier.name} contract {contract.pk}",
    )


def displace_spot(
    room: SiteRoom,
    *,
    start: datetime,
    end: datetime,
    capacity_kw: Decimal,
    now: datetime,
    by: Contract | None,
    actor,
    reason: str,
) -> list[PreemptionNotice]:
    """Push Spot placements off `room` so `capacity_kw` more fits over [start, end); return unsaved notices.

    The notice is issued now and takes effect at the displacement, never before now: Spot hears of it before it
    loses the capacity. A displaced placement that runs before that moment ends exactly then (valid_to =
    effective_at: when the new commitment begins, or now when its window began a few milliseconds ago, while the
    request was on its way), and one that had not begun is dropped (it never ran there).
    """
    displaced = capacity.spot_to_displace(room, start, end, capacity_kw=capacity_kw)
    notices = []
    for booking in displaced:
        if booking.placement_id is None or booking.contract_id is None:
            raise ValueError(f"only a stored Spot placement can be displaced, not {booking}")
        effective = max(start, booking.starts_at, now)
        if booking.starts_at < effective:
            ends = effective if booking.ends_at is None else min(booking.ends_at, effective)
            Placement.objects.filter(pk=booking.placement_id).update(valid_to=ends)
        else:
            Placement.objects.filter(pk=booking.placement_id).delete()
        room.bookings.remove(booking)
        notices.append(
            PreemptionNotice(
                contract_id=booking.contract_id,
                site_id=room.site_id,
                capacity_kw=booking.capacity_kw,
                issued_at=now,
                effective_at=effective,
                reason=reason[:200],
                displaced_by=by,
                created_by=signed_in(actor),
            )
        )
    return notices
