"""Pure arithmetic of SLA capacity: peak commitments over a window, placement plans and prices.

No Django, no I/O: dataclasses and Decimals in, dataclasses and Decimals out, so admission, quoting and failover
share one definition of "fits" and the rules can be tested on hand-made numbers. `sla.services` reads the
database, calls these functions inside its locked transaction, and writes the result.

Units: kW of inference IT power, hours, USD; times are aware datetimes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_HALF_UP, Decimal

ZERO = Decimal("0")
KW_STEP = Decimal("0.001")  # placements are stored with 3 decimals (Placement.capacity_kw)
PRICE_STEP = Decimal("0.000001")  # USD per kWh, 6 decimals (Contract.quoted_price_usd_per_kwh)
CENT = Decimal("0.01")

# Request limits: beyond these a request is malformed (400), not merely unservable (409).
MIN_CAPACITY_KW = Decimal("0.001")
MAX_CAPACITY_KW = Decimal("100000")  # 100 MW: several times the whole fleet; larger is a typo, not a request
MIN_DURATION_HOURS = Decimal("1")
MAX_DURATION_HOURS = Decimal("8760")  # one year
MAX_START_AHEAD_DAYS = 365
START_GRACE_SECONDS = 60  # a start this close to now counts as "now" (clock skew, time on the wire)

# A contract is spread over at most this many sites (more pieces cost more to operate than they save).
MAX_SITES_PER_CONTRACT = 4

# Pricing on a term basis (docs/economics.md): a rate card in USD per kW-month, the base rate times the tier's
# multiplier, like a cloud's price list; it does not move with the hour's token price. The base rate makes
# Premium (3.5x) about GPU cloud on demand: an 8 x H100 node at 2-3 USD per GPU-hour on its 10.2 kW nameplate is
# 1,150-1,720 USD per kW-month, so Premium = 3.5 x 415 = 1,452; Spot (0.4x, 166 = 0.23 USD/kWh) stays above
# what a kWh earns mining (about 0.12 USD at 50 USD per PH-day). Settings.SLA_BASE_RATE_USD_PER_KW_MONTH overrides.
BASE_RATE_USD_PER_KW_MONTH = Decimal("415")
HOURS_PER_MONTH = Decimal("730")  # 8,760 / 12: cloud price lists' month
# Without a stored market price the reference token price (shown, not charged) is the 70B class's list price
# (sites.catalogue.list_price_usd_per_mtok()).
DEFAULT_INFERENCE_PRICE_USD_PER_MTOK = Decimal("0.88")
# Utilization surcharge: price x (1 + UTILIZATION_SURCHARGE x utilization of the chosen sites after admission),
# so an empty fleet sells at the tier price and a full one at 1.5 x: scarce capacity costs more.
UTILIZATION_SURCHARGE = Decimal("0.50")
SECONDS_PER_HOUR = Decimal("3600")
TOKENS_PER_MTOK = Decimal("1000000")


class NoPlacement(ValueError):
    """No set of sites can carry the request for its whole window; the message says why."""


@dataclass(frozen=True)
class Booking:
    """kW held on one site over [starts_at, ends_at); `ends_at` None means open-ended."""

    site_id: int
    capacity_kw: Decimal
    starts_at: datetime
    ends_at: datetime | None
    preemptible: bool = False
    placement_id: int | None = None
    contract_id: int | None = None


@dataclass(frozen=True)
class WindowLoad:
    """The peaks of what is committed on one site over one window [start, end), summed by the database instead of
    swept here over every booking: `firm_kw` leaves Spot out, `total_kw` counts it."""

    start: datetime
    end: datetime
    firm_kw: Decimal = ZERO
    total_kw: Decimal = ZERO


@dataclass
class SiteRoom:
    """One candidate site: its SLA limit and what is already committed on it over the window, as the bookings
    themselves or, when only the peaks are needed, as their `load` over the request's window."""

    site_id: int
    code: str
    name: str
    market_region: str
    energy_cost_multiplier: Decimal
    limit_kw: Decimal
    tokens_per_s_per_kw: Decimal
    bookings: list[Booking] = field(default_factory=list)
    load: WindowLoad | None = None

    def peak_kw(self, start: datetime, end: datetime, *, firm_only: bool = False) -> Decimal:
        """Peak committed kW over [start, end): `load` when it was read for this window, else swept over bookings."""
        if self.load is None:
            return peak_kw(self.bookings, start, end, firm_only=firm_only)
        if (self.load.start, self.load.end) != (start, end):
            raise ValueError(f"{self.code}: its load was read for another window")
        return self.load.firm_kw if firm_only else self.load.total_kw


@dataclass(frozen=True)
class Share:
    """A piece of a plan: `capacity_kw` on one site."""

    site: SiteRoom
    capacity_kw: Decimal


@dataclass(frozen=True)
class Price:
    """A price per kWh and its breakdown (see `price_for`)."""

    token_price_usd_per_mtok: Decimal
    token_price_source: str
    tokens_per_s_per_kw: Decimal
    base_value_usd_per_kwh: Decimal
    tier_multiplier: Decimal
    utilization_pct: Decimal
    utilization_factor: Decimal
    price_usd_per_kwh: Decimal
    total_usd: Decimal
    base_rate_usd_per_kw_month: Decimal = BASE_RATE_USD_PER_KW_MONTH
    price_usd_per_kw_month: Decimal = ZERO


def peak_kw(bookings: Iterable[Booking], start: datetime, end: datetime, *, firm_only: bool = False) -> Decimal:
    """Largest sum of kW held at any moment of [start, end) by `bookings` (a sweep over their start/end events).

    Intervals are half-open, so one booking ending exactly when another starts never counts twice.
    With `firm_only`, preemptible (Spot) bookings are left out: they never block a higher tier.
    """
    events: list[tuple[datetime, int, Decimal]] = []
    for booking in bookings:
        if firm_only and booking.preemptible:
            continue
        lo = max(booking.starts_at, start)
        hi = end if booking.ends_at is None else min(booking.ends_at, end)
        if lo < hi:
            events.append((lo, 1, booking.capacity_kw))
            events.append((hi, 0, -booking.capacity_kw))
    events.sort(key=lambda event: (event[0], event[1]))  # at equal times, releases (0) before holds (1)
    running = peak = ZERO
    for _, _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


def first_overload(
    bookings: Sequence[Booking], start: datetime, end: datetime, *, extra_kw: Decimal, limit_kw: Decimal
) -> datetime | None:
    """The first moment in [start, end) where `bookings` plus `extra_kw` exceed `limit_kw`, or None."""
    if extra_kw > limit_kw:
        return start
    events: list[tuple[datetime, int, Decimal]] = []
    for booking in bookings:
        lo = max(booking.starts_at, start)
        hi = end if booking.ends_at is None else min(booking.ends_at, end)
        if lo < hi:
            events.append((lo, 1, booking.capacity_kw))
            events.append((hi, 0, -booking.capacity_kw))
    events.sort(key=lambda event: (event[0], event[1]))
    running = extra_kw
    for moment, _, delta in events:
        running += delta
        if running > limit_kw:
            return moment
    return None


def spot_to_displace(site: SiteRoom, start: datetime, end: datetime, *, capacity_kw: Decimal) -> list[Booking]:
    """Spot bookings to push off `site` so that `capacity_kw` more fits over [start, end).

    Newest Spot contract goes first (last in, first out), and only bookings held at a moment that is actually
    overloaded are chosen, so no Spot is displaced for nothing. Empty when it already fits; the caller has
    checked that the firm bookings alone leave room.
    """
    kept = list(site.bookings)
    displaced: list[Booking] = []
    while (moment := first_overload(kept, start, end, extra_kw=capacity_kw, limit_kw=site.limit_kw)) is not None:
        held = [
            b for b in kept if b.preemptible and b.starts_at <= moment and (b.ends_at is None or b.ends_at > moment)
        ]
        if not held:  # cannot happen when the firm room was checked; refuse rather than loop
            raise NoPlacement(f"{site.code} is full with firm commitments at {moment:%Y-%m-%d %H:%M}.")
        victim = max(held, key=lambda b: (b.contract_id or 0, b.placement_id or 0))
        kept.remove(victim)
        displaced.append(victim)
    return displaced


def hall_limit_kw(power_kw: Decimal, halls: Iterable[tuple[Decimal, Decimal]]) -> Decimal:
    """The inference IT kW a site can promise: its inference hardware, each hall's `(IT kW, PUE)`, bounded by the
    facility power `power_kw` at each hall's PUE (``sum IT_h x PUE_h <= power``, the engine's power row).

    The halls are filled from the lowest PUE up (the best split the engine can serve), rounded down to the watt."""
    left = power_kw
    total = ZERO
    for it_kw, pue in sorted(halls, key=lambda hall: hall[1]):
        if it_kw <= 0:
            continue
        if pue < 1:
            raise ValueError("a hall's PUE is at least 1")
        taken = min(it_kw, left / pue)
        total += taken
        left -= taken * pue
        if left <= 0:
            break
    return max(_round_down(total), ZERO)


def room_kw(site: SiteRoom, start: datetime, end: datetime, *, preemptible: bool) -> Decimal:
    """kW a new request can take on `site` for the whole window; Spot bookings do not count against firm tiers."""
    return max(site.limit_kw - site.peak_kw(start, end, firm_only=not preemptible), ZERO)


def _round_up(value: Decimal) -> Decimal:
    return value.quantize(KW_STEP, rounding=ROUND_CEILING)


def _round_down(value: Decimal) -> Decimal:
    return value.quantize(KW_STEP, rounding=ROUND_DOWN)


def contract_limit_kw(capacity_kw: Decimal, *, n_minus_1: bool, min_sites: int = 1) -> Decimal:
    """The most kW a contract's placements may hold together at any moment.

    Its capacity, except under N-1, where `plan_placement` books n >= 2 equal shares of capacity / (n - 1) (each
    rounded up to the watt): the largest such total over the site counts it may choose (twice the capacity on two
    sites). No single placement ever holds more than the capacity itself.
    """
    if not n_minus_1:
        return capacity_kw
    fewest = max(min_sites, 2)
    return max(n * _round_up(capacity_kw / (n - 1)) for n in range(fewest, max(fewest, MAX_SITES_PER_CONTRACT) + 1))


def contract_room_kw(bookings: Iterable[Booking], start: datetime, end: datetime, *, limit_kw: Decimal) -> Decimal:
    """kW a contract may still place over the whole of [start, end), given `bookings` (its own placements)."""
    return max(limit_kw - peak_kw(bookings, start, end), ZERO)


def plan_placement(
    sites: Sequence[SiteRoom],
    *,
    capacity_kw: Decimal,
    start: datetime,
    end: datetime,
    min_sites: int,
    n_minus_1: bool,
    preemptible: bool,
    region_preference: str = "",
    tier_name: str = "",
) -> list[Share]:
    """Choose sites and kW per site for a request, or raise NoPlacement with the reason.

    Sites are tried in order of preference: the preferred market region first, then the cheapest energy
    (`energy_cost_multiplier`), then the most free room, then the lowest id (deterministic).

    - N-1 (Premium): n >= max(2, min_sites) sites with an equal share of capacity / (n - 1) each, so losing any one
      still leaves the full capacity (2 sites x 100 %, 3 x 50 %, 4 x 33.4 %); the fewest sites that fit win.
    - min_sites > 1 without N-1: an equal share of capacity / n on n >= min_sites sites.
    - min_sites == 1: the whole capacity on the best site that can take it; otherwise split over up to
      MAX_SITES_PER_CONTRACT sites, the roomiest first.
    Every share fits its site at every moment of [start, end): room is the site limit minus the peak committed
    over the window (Spot excluded unless the request is Spot itself).
    """
    rooms = {site.site_id: room_kw(site, start, end, preemptible=preemptible) for site in sites}
    free_all = {site.site_id: site.limit_kw - site.peak_kw(start, end) for site in sites}
    ordered = sorted(
        sites,
        key=lambda s: (
            bool(region_preference) and s.market_region != region_preference,
            s.energy_cost_multiplier,
            -free_all[s.site_id],
            s.site_id,
        ),
    )
    most_sites = min(MAX_SITES_PER_CONTRACT, len(ordered))
    fewest = max(min_sites, 2) if n_minus_1 else max(min_sites, 1)
    for n in range(fewest, most_sites + 1):
        if n_minus_1:
            shares = [_round_up(capacity_kw / (n - 1))] * n
        elif n == 1:
            shares = [capacity_kw]
        elif min_sites > 1:
            even = _round_down(capacity_kw / n)
            if even <= 0:  # less than a watt per site: cannot be spread this thin
                continue
            shares = [capacity_kw - even * (n - 1)] + [even] * (n - 1)
        else:
            break  # single-site tiers split by room below, not evenly
        need = shares[0]  # the largest share (rounding remainder goes to the first)
        chosen = [site for site in ordered if rooms[site.site_id] >= need][:n]
        if len(chosen) == n:
            return [Share(site=site, capacity_kw=kw) for site, kw in zip(chosen, shares, strict=True)]
    if not n_minus_1 and min_sites == 1:
        pieces: list[Share] = []
        remaining = capacity_kw
        for site in sorted(ordered, key=lambda s: (-rooms[s.site_id], s.site_id))[:most_sites]:
            take = min(_round_down(rooms[site.site_id]), remaining)
            if take > 0:
                pieces.append(Share(site=site, capacity_kw=take))
                remaining -= take
            if remaining <= 0:
                return sorted(pieces, key=lambda p: ordered.index(p.site))
    best = max(rooms.values(), default=ZERO)
    total = sum(rooms.values(), ZERO)
    what = f"{capacity_kw} kW{f' of {tier_name}' if tier_name else ''}"
    if n_minus_1:
        rule = f"N-1 needs at least {fewest} sites each able to carry {_round_up(capacity_kw / (fewest - 1))} kW"
    elif min_sites > 1:
        rule = f"it must be spread over {min_sites} sites"
    else:
        rule = f"at most {most_sites} sites may share it"
    raise NoPlacement(
        f"Not enough free inference capacity for {what} from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC "
        f"({rule}): the most any online site can take for the whole window is {best:.3f} kW, "
        f"{total:.3f} kW across {len(rooms)} sites."
    )


def fill_partially(
    sites: Sequence[SiteRoom], *, capacity_kw: Decimal, start: datetime, end: datetime, preemptible: bool
) -> list[Share]:
    """As much of `capacity_kw` as fits over the whole window, roomiest sites first, on at most
    MAX_SITES_PER_CONTRACT sites (failover's last resort: serve part rather than nothing)."""
    rooms = sorted(
        ((room_kw(site, start, end, preemptible=preemptible), site) for site in sites),
        key=lambda pair: (-pair[0], pair[1].site_id),
    )
    shares, remaining = [], capacity_kw
    for room, site in rooms[:MAX_SITES_PER_CONTRACT]:
        take = min(_round_down(room), remaining)
        if take > 0:
            shares.append(Share(site=site, capacity_kw=take))
            remaining -= take
    return shares


def utilization_pct(plan: Sequence[Share], start: datetime, end: datetime, *, preemptible: bool) -> Decimal:
    """Peak committed share of the chosen sites' combined limit over the window, this request included (0-100)."""
    limit = sum((share.site.limit_kw for share in plan), ZERO)
    if limit <= 0:
        return Decimal("100")
    committed = sum(
        (share.site.peak_kw(start, end, firm_only=not preemptible) + share.capacity_kw for share in plan),
        ZERO,
    )
    return min(committed / limit * 100, Decimal("100")).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def price_for(
    plan: Sequence[Share],
    *,
    capacity_kw: Decimal,
    duration_hours: Decimal,
    tier_multiplier: Decimal,
    token_price_usd_per_mtok: Decimal | None,
    start: datetime,
    end: datetime,
    preemptible: bool,
    base_rate_usd_per_kw_month: Decimal = BASE_RATE_USD_PER_KW_MONTH,
) -> Price:
    """Price per kWh, per kW-month and in total, on the term rate card.

    rate (USD per kW-month) = base rate x tier multiplier x (1 + UTILIZATION_SURCHARGE x utilization);
    price (USD/kWh)         = rate / HOURS_PER_MONTH (730);
    total (USD)             = price x capacity_kw x duration_hours (the customer pays for its capacity once, even
                              when N-1 books it twice).
    The same request is priced the same at any hour of the day: nothing in it follows the 5-minute markets.
    Reference, not charged: base value (USD/kWh) = token price x tokens/s per kW at the chosen sites x 3,600 / 1e6,
    what a kWh of this placement earns when every token sells at the reference token price (share-weighted mean
    of tokens/s per kW over the plan's sites).
    """
    source = "market"
    if token_price_usd_per_mtok is None:
        token_price_usd_per_mtok, source = DEFAULT_INFERENCE_PRICE_USD_PER_MTOK, "default"
    placed = sum((share.capacity_kw for share in plan), ZERO)
    tokens_per_s_per_kw = (
        sum((share.site.tokens_per_s_per_kw * share.capacity_kw for share in plan), ZERO) / placed if placed else ZERO
    ).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    base = token_price_usd_per_mtok * tokens_per_s_per_kw * SECONDS_PER_HOUR / TOKENS_PER_MTOK
    utilization = utilization_pct(plan, start, end, preemptible=preemptible)
    factor = 1 + UTILIZATION_SURCHARGE * utilization / 100
    monthly = (base_rate_usd_per_kw_month * tier_multiplier * factor).quantize(CENT, rounding=ROUND_HALF_UP)
    price = (monthly / HOURS_PER_MONTH).quantize(PRICE_STEP, rounding=ROUND_HALF_UP)
    total = (price * capacity_kw * duration_hours).quantize(CENT, rounding=ROUND_HALF_UP)
    return Price(
        token_price_usd_per_mtok=token_price_usd_per_mtok,
        token_price_source=source,
        tokens_per_s_per_kw=tokens_per_s_per_kw,
        base_value_usd_per_kwh=base.quantize(PRICE_STEP, rounding=ROUND_HALF_UP),
        tier_multiplier=tier_multiplier,
        utilization_pct=utilization,
        utilization_factor=factor.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP),
        price_usd_per_kwh=price,
        total_usd=total,
        base_rate_usd_per_kw_month=base_rate_usd_per_kw_month,
        price_usd_per_kw_month=monthly,
    )


def uptime_pct(*, delivered_kw_minutes: Decimal, committed_kw_minutes: Decimal) -> Decimal | None:
    """Delivered over committed energy in percent, rounded down to 0.001 (never up into a better credit step).

    None when nothing was committed: no measurement is not 100 % and not 0 %.
    """
    if not committed_kw_minutes:
        return None
    return (Decimal(delivered_kw_minutes) / Decimal(committed_kw_minutes) * 100).quantize(
        Decimal("0.001"), rounding=ROUND_DOWN
    )


def cancellation_fee_usd(
    *, quoted_total_usd: Decimal, fee_pct: Decimal, starts_at: datetime, ends_at: datetime, at: datetime
) -> Decimal:
    """The fee for cancelling at `at`: `fee_pct` % of the quoted total of the part of [starts_at, ends_at) not yet
    served (all of it before the start, none after the end), to the cent."""
    window = (ends_at - starts_at).total_seconds()
    unserved = (ends_at - max(at, starts_at)).total_seconds()
    share = min(max(Decimal(unserved) / Decimal(window), ZERO), Decimal(1)) if window > 0 else ZERO
    return (quoted_total_usd * fee_pct / 100 * share).quantize(CENT, rounding=ROUND_HALF_UP)


def customer_peak_kw(held: Iterable[tuple[Decimal, datetime, datetime]], start: datetime, end: datetime) -> Decimal:
    """Peak kW over [start, end) of a customer's contracts, each (kW, starts_at, ends_at): what its cap bounds."""
    return peak_kw((Booking(0, kw, since, until) for kw, since, until in held), start, end)
