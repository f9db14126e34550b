"""Quotes and admission control: a promise is made only when every chosen site can keep it.

Admission locks every candidate Site row (SELECT ... FOR UPDATE, in pk order) before it sums the overlapping
placements and inserts its own, so concurrent requests are serialized per fleet and no site is ever booked past
its limit at any moment of a contract's window. The arithmetic (peaks, plans, prices) is pure: `sla.capacity`."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal

from django.db import IntegrityError, OperationalError, transaction
from django.db.models import DecimalField, ExpressionWrapper, F, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from energyarb.db import PreparedRead, aware, decimal
from sites.choices import HardwareKind
from sites.models import MarketPrice, Site, SiteInventory
from sites.simulation import derive_climate_profile
from sites.simulation.cooling import pue

from .. import capacity
from ..capacity import Booking, NoPlacement, SiteRoom
from ..choices import ContractStatus
from ..models import (
    Contract,
    Customer,
    Placement,
    PreemptionNotice,
    Quote,
    Tier,
)
from .lifecycle import IllegalTransition

logger = logging.getLogger(__name__)

ZERO = Decimal("0")
KW = DecimalField(max_digits=16, decimal_places=3)
TOKENS = DecimalField(max_digits=20, decimal_places=2)
QUOTE_VALIDITY = timedelta(minutes=15)
# simple-history builds a new manager class on every `Contract.history` access; admission takes one once.
CONTRACT_HISTORY = Contract.history
ADMISSION_ATTEMPTS = 3  # a deadlock with a non-admission transaction (e.g. a site-status change) is retried


class AdmissionRefused(Exception):
    """No placement can keep the promise (capacity is short); the message says why."""


class QuoteUnavailable(Exception):
    """The quote expired, or was already used for a contract."""


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


# Reads of admission control run on every quote and admission: compiled once per process (energyarb.db).


def _fleet_queryset(*, lock: bool) -> QuerySet:
    inference = (
        SiteInventory.objects.filter(site=OuterRef("pk"), hardware_model__kind=HardwareKind.INFERENCE)
        .order_by()
        .values("site")
    )
    power = ExpressionWrapper(F("units_available") * F("hardware_model__power_kw_per_unit"), output_field=KW)
    tokens = ExpressionWrapper(F("units_available") * F("hardware_model__tokens_per_s"), output_field=TOKENS)
    newest_price = MarketPrice.objects.order_by("-interval_start").values("inference_price_usd_per_mtok")[:1]
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
        )
    )
    return sites.select_for_update(of=("self",)) if lock else sites


FLEET_READS = {lock: PreparedRead(functools.partial(_fleet_queryset, lock=lock)) for lock in (False, True)}


@dataclass
class Fleet:
    """The online sites that can carry SLA capacity, and the newest token price (None when none is stored)."""

    rooms: list[SiteRoom]
    token_price_usd_per_mtok: Decimal | None


def read_fleet(*, lock: bool) -> Fleet:
    """Online sites able to run inference with their SLA limit, plus the newest token price; one query.

    A site's SLA limit is what its available inference hardware can carry (sum of units_available x kW per unit
    over inference models), bounded by the IT power its facility power leaves at the PUE of its climate's hot
    design day (`design_pue`): a promise must hold on a summer afternoon too, not only at tonight's PUE.
    With `lock`, the Site rows are locked FOR UPDATE in pk order: every admission and failover takes the same
    locks in the same order, so they serialize without deadlocking each other, and the placements summed
    afterwards cannot change under the caller.
    The inventory sums are scalar subqueries because PostgreSQL refuses FOR UPDATE next to GROUP BY.
    """
    rows = FLEET_READS[lock].rows()
    rooms = []
    token_price = None
    for pk, code, name, region, cost, power_kw, cooling, latitude, zone, tz, inference_kw, tokens_per_s, price in rows:
        token_price = None if price is None else decimal(price)
        inference_kw = decimal(inference_kw).quantize(capacity.KW_STEP)
        it_power_kw = decimal(power_kw) / design_pue(cooling, float(latitude), zone, tz)
        limit = min(it_power_kw.quantize(capacity.KW_STEP, rounding=ROUND_DOWN), inference_kw)
        if limit <= 0:
            continue
        rooms.append(
            SiteRoom(
                site_id=pk,
                code=code,
                name=name,
                market_region=region,
                energy_cost_multiplier=decimal(cost),
                limit_kw=limit,
                tokens_per_s_per_kw=decimal(tokens_per_s) / inference_kw,
            )
        )
    if not rows:
        token_price = newest_token_price()
    return Fleet(rooms=rooms, token_price_usd_per_mtok=token_price)


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
        Placement.objects.committed()
        .overlapping(start, end)
        .order_by()
        .values_list(
            "site_id", "capacity_kw", "valid_from", "valid_to", "contract__tier__is_preemptible", "pk", "contract_id"
        )
    )


BOOKINGS_READ = PreparedRead(_bookings_queryset, start=datetime, end=datetime)
OPEN_ENDED_BOOKINGS_READ = PreparedRead(_bookings_queryset, start=datetime)


def load_bookings(rooms: Iterable[SiteRoom], *, start: datetime, end: datetime | None) -> None:
    """Fill each room's `bookings` with the placements of open contracts overlapping [start, end); one query.

    Placements on other sites (offline, in maintenance) are read too and ignored: filtering them in SQL would
    make the statement vary with the list of sites and defeat its compile-once (and server-side prepared) form.
    """
    by_id = {room.site_id: room for room in rooms}
    rows = OPEN_ENDED_BOOKINGS_READ.rows(start=start) if end is None else BOOKINGS_READ.rows(start=start, end=end)
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
    )


def _plan_sites(plan: list[capacity.Share]) -> list[dict]:
    return [
        {
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
    Cost: sites with the newest token price (1), overlapping placements (1), one insert.
    """
    fleet = read_fleet(lock=False)
    load_bookings(fleet.rooms, start=request.starts_at, end=request.ends_at)
    plan = _plan(fleet.rooms, request)
    price = _price(plan, request, fleet.token_price_usd_per_mtok)
    return Quote.objects.create(
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
        sites=_plan_sites(plan),
        valid_until=timezone.now() + QUOTE_VALIDITY,
    )


def create_contract(*, customer: Customer, request: CapacityRequest, actor=None) -> Contract:
    """Admit a request priced now, or raise AdmissionRefused; see `_admit` for the guarantees."""
    contract = Contract(
        customer=customer,
        tier=request.tier,
        capacity_kw=request.capacity_kw,
        region_preference=request.region_preference,
    )
    return _admit(contract=contract, request=request, actor=actor, reason="admitted (API request)")


def create_contract_from_quote(*, quote: Quote, actor=None) -> Contract:
    """Admit the quoted request at the quoted price, or raise QuoteUnavailable / AdmissionRefused.

    Placement is decided again under locks (capacity may have gone since the quote). A quote whose start has
    passed is bought for the same duration starting now. Two buyers of one quote: the unique Contract.quote
    lets exactly one insert succeed.
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
    contract = Contract(
        customer_id=quote.customer_id,
        tier=quote.tier,
        capacity_kw=quote.capacity_kw,
        region_preference=quote.region_preference,
        quote=quote,
        quoted_price_usd_per_kwh=quote.price_usd_per_kwh,
        quoted_total_usd=quote.total_usd,
    )
    try:
        return _admit(contract=contract, request=request, actor=actor, reason=f"admitted (quote {quote.pk})")
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


def _admit(*, contract: Contract, request: CapacityRequest, actor, reason: str) -> Contract:
    """Place `contract` for `request` so that no site exceeds its limit at any moment, and save it.

    Retried on a deadlock (only possible against a transaction that locks sites out of pk order, such as a site
    status change followed by a failover); any other database error propagates.
    """
    for attempt in range(1, ADMISSION_ATTEMPTS + 1):
        try:
            return _admit_once(contract=contract, request=request, actor=actor, reason=reason)
        except OperationalError as exc:
            if attempt == ADMISSION_ATTEMPTS or getattr(exc.__cause__, "sqlstate", None) not in ("40P01", "40001"):
                raise
            logger.warning("Admission retried after %s (attempt %d)", type(exc.__cause__).__name__, attempt)
    raise AssertionError("unreachable")


@transaction.atomic
def _admit_once(*, contract: Contract, request: CapacityRequest, actor, reason: str) -> Contract:
    """One admission attempt: lock sites, read overlapping placements, plan, write.

    Query cost: lock + limits + token price (1), overlapping placements (1), contract insert and its history row
    (2), placements (1 bulk insert); displacing Spot adds a few.
    """
    fleet = read_fleet(lock=True)
    load_bookings(fleet.rooms, start=request.starts_at, end=request.ends_at)
    plan = _plan(fleet.rooms, request)
    if contract.quote_id is None and contract.admitted_at is None and contract.pk is None:
        price = _price(plan, request, fleet.token_price_usd_per_mtok)
        contract.quoted_price_usd_per_kwh = price.price_usd_per_kwh
        contract.quoted_total_usd = price.total_usd
    now = timezone.now()
    contract.starts_at, contract.ends_at = request.starts_at, request.ends_at
    contract.admitted_at = now
    if request.starts_at <= now:
        contract.status = ContractStatus.ACTIVE  # the window has begun: admitted and running at once
    contract.status_changed_at = now
    contract.status_reason = reason[:200]
    user = actor if getattr(actor, "is_authenticated", False) else None
    if contract.pk is None:
        # A new contract: one INSERT for the row and one for its history record (who and why), without the
        # per-instance save() machinery; the unique quote still fails loudly (IntegrityError) on a second buyer.
        Contract.objects.bulk_create([contract])
        CONTRACT_HISTORY.bulk_history_create([contract], default_user=user, default_change_reason=reason)
    else:
        contract._history_user = user
        contract._change_reason = reason
        contract.save()
    placements = []
    notices = []
    for share in plan:
        if not request.tier.is_preemptible:
            notices += displace_spot(
                share.site,
                start=request.starts_at,
                end=request.ends_at,
                capacity_kw=share.capacity_kw,
                now=now,
                by=contract,
                actor=actor,
                reason=f"displaced by {request.tier.name} contract {contract.pk}",
            )
        placements.append(
            Placement(
                contract=contract,
                site_id=share.site.site_id,
                capacity_kw=share.capacity_kw,
                valid_from=request.starts_at,
                valid_to=request.ends_at,
                reason=reason[:200],
            )
        )
    Placement.objects.bulk_create(placements)
    if notices:
        PreemptionNotice.objects.bulk_create(notices)
    sites = {share.site.site_id: share.site for share in plan}
    for placement in placements:  # the response shows placements without querying them back
        placement.site = Site(
            pk=placement.site_id, code=sites[placement.site_id].code, name=sites[placement.site_id].name
        )
    contract._prefetched_objects_cache = {
        "placements": placements,
        "service_credits": [],
        "preemption_notices": [],
        "downtimes": [],
    }
    contract.delivered_kw_minutes = contract.committed_kw_minutes = ZERO
    return contract


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

    A displaced placement ends where the new commitment begins (valid_to = start) when it was already running
    before, and is dropped when it had not begun (it never ran there). The notice is issued now and takes effect
    at the displacement, never before now: Spot hears of it before it loses the capacity.
    """
    displaced = capacity.spot_to_displace(room, start, end, capacity_kw=capacity_kw)
    notices = []
    for booking in displaced:
        effective = max(start, booking.starts_at, now)
        if booking.starts_at < start:
            Placement.objects.filter(pk=booking.placement_id).update(valid_to=start)
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
                created_by=actor if getattr(actor, "is_authenticated", False) else None,
            )
        )
    return notices
