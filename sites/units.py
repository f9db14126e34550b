"""Explicit conversions between the hackathon market API's abstract units and energyarb's real units.

The MARA Hackathon 2025 market API priced a game, not a market. Its accounting, per 5-minute interval
(``../shared/product/original-api.md``):

    miner revenue     = units x hashrate x hash_price      (hashrate in the API's abstract hashrate units)
    inference revenue = units x tokens x token_price       (tokens delivered per interval)
    power cost        = watts x energy_price               (watts are real watts)

All three amounts are in one abstract money unit, and ``hashrate`` is an abstract unit too. Nothing in the API
ties either to USD or TH/s, so any mapping to real units is a *declared scale*, not a measurement. energyarb
declares one (``HackathonScale``; change it only on purpose, and say why):

    s  = usd_per_unit               = 2.5e-6 USD per abstract money unit
    th = th_per_s_per_hashrate_unit = 0.06 TH/s per abstract hashrate unit
    a token is a token; the API's ``tokens`` per unit is tokens per 5-minute interval

From these, with 12 intervals per hour and 288 per day:

    energy:  USD/MWh          = energy_price x s x 1e6 W/MW x 12 intervals/h    = energy_price x 30
    hash:    USD per PH/s/day = hash_price x s x 288 intervals/day x 1000 / th  = hash_price x 12
    tokens:  USD per Mtok     = token_price x s x 1e6 tokens/Mtok               = token_price x 2.5

With this scale the event-day trace (energy 1.13-3.0, hash 1.0-4.0, token 0.65-3.03) reads as 34-90 USD/MWh,
12-48 USD per PH/s per day and 1.6-7.6 USD per million tokens, and the API's hydro miner (5,000 hashrate units,
5,000 W) is a 300 TH/s, 5 kW machine, all within real ranges. Why one money scale for all three prices: it
multiplies revenue and cost by the same factor, so every allocation's profit keeps its sign and every ranking
of allocations is unchanged by the conversion (tested). Three independent factors would not guarantee that.

Amounts are ``Decimal`` (money is never float here); ints and floats are accepted and converted exactly
through their shortest ``repr``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

INTERVAL_MINUTES = 5
INTERVAL_SECONDS = INTERVAL_MINUTES * 60  # 300 s
INTERVALS_PER_HOUR = 60 // INTERVAL_MINUTES  # 12
INTERVALS_PER_DAY = 24 * INTERVALS_PER_HOUR  # 288

WATTS_PER_KW = Decimal(1000)
WATTS_PER_MW = Decimal(1_000_000)
TH_PER_PH = Decimal(1000)
TOKENS_PER_MTOK = Decimal(1_000_000)

Number = Decimal | int | float


def _d(value: Number) -> Decimal:
    """Decimal from a number; floats go through their shortest repr (0.1 -> Decimal('0.1'))."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise TypeError("A boolean is not a quantity.")
    if isinstance(value, int):
        return Decimal(value)
    return Decimal(repr(float(value)))


@dataclass(frozen=True)
class HackathonScale:
    """The declared mapping from the hackathon's abstract units to real ones (see the module docstring)."""

    usd_per_unit: Decimal = Decimal("0.0000025")
    th_per_s_per_hashrate_unit: Decimal = Decimal("0.06")

    def __post_init__(self) -> None:
        if self.usd_per_unit <= 0 or self.th_per_s_per_hashrate_unit <= 0:
            raise ValueError("Scale factors must be positive.")

    @property
    def usd_per_mwh_per_energy_price(self) -> Decimal:
        """USD/MWh for an energy_price of 1: a watt for one interval costs s; 1 MWh is 1e6 W for 12 intervals."""
        return self.usd_per_unit * WATTS_PER_MW * INTERVALS_PER_HOUR

    @property
    def usd_per_ph_day_per_hash_price(self) -> Decimal:
        """USD per PH/s per day for a hash_price of 1: 1 PH/s is 1000 / th hashrate units, paid 288 times a day."""
        return self.usd_per_unit * INTERVALS_PER_DAY * TH_PER_PH / self.th_per_s_per_hashrate_unit

    @property
    def usd_per_mtok_per_token_price(self) -> Decimal:
        """USD per million tokens for a token_price of 1: each token earns token_price x s."""
        return self.usd_per_unit * TOKENS_PER_MTOK


DEFAULT_SCALE = HackathonScale()


@dataclass(frozen=True)
class RealPrices:
    """One interval's hackathon prices expressed in energyarb's real units under a declared scale."""

    price_usd_per_mwh: Decimal
    hashprice_usd_per_ph_day: Decimal
    inference_price_usd_per_mtok: Decimal


# Power and energy (real units on both sides: the API's watts are watts).


def watts_to_kw(watts: Number) -> Decimal:
    """kW = W / 1000 (the hackathon inventory's power per unit is in watts)."""
    return _d(watts) / WATTS_PER_KW


def kw_to_watts(kw: Number) -> Decimal:
    """W = kW x 1000."""
    return _d(kw) * WATTS_PER_KW


def interval_energy_mwh(watts: Number) -> Decimal:
    """Energy drawn in one 5-minute interval at constant power: MWh = W / 1e6 / 12."""
    return _d(watts) / WATTS_PER_MW / INTERVALS_PER_HOUR


# The hackathon's own accounting, per interval, in abstract money units (exactly as the API computed it).


def hackathon_miner_revenue(*, units: Number, hashrate: Number, hash_price: Number) -> Decimal:
    """Abstract money per interval = units x hashrate per unit x hash_price."""
    return _d(units) * _d(hashrate) * _d(hash_price)


def hackathon_inference_revenue(*, units: Number, tokens: Number, token_price: Number) -> Decimal:
    """Abstract money per interval = units x tokens per unit per interval x token_price."""
    return _d(units) * _d(tokens) * _d(token_price)


def hackathon_power_cost(*, watts: Number, energy_price: Number) -> Decimal:
    """Abstract money per interval = total watts x energy_price."""
    return _d(watts) * _d(energy_price)


def hackathon_units_to_usd(amount: Number, scale: HackathonScale = DEFAULT_SCALE) -> Decimal:
    """USD = abstract money x s."""
    return _d(amount) * scale.usd_per_unit


def usd_to_hackathon_units(usd: Number, scale: HackathonScale = DEFAULT_SCALE) -> Decimal:
    """Abstract money = USD / s."""
    return _d(usd) / scale.usd_per_unit


# Prices.


def hackathon_energy_price_to_usd_per_mwh(energy_price: Number, scale: HackathonScale = DEFAULT_SCALE) -> Decimal:
    """USD/MWh = energy_price x s x 1e6 x 12 (x 30 with the default scale)."""
    return _d(energy_price) * scale.usd_per_mwh_per_energy_price


def usd_per_mwh_to_hackathon_energy_price(usd_per_mwh: Number, scale: HackathonScale = DEFAULT_SCALE) -> Decimal:
    """energy_price = USD/MWh / (s x 1e6 x 12)."""
    return _d(usd_per_mwh) / scale.usd_per_mwh_per_energy_price


def hackathon_hash_price_to_usd_per_ph_day(hash_price: Number, scale: HackathonScale = DEFAULT_SCALE) -> Decimal:
    """USD per PH/s per day = hash_price x s x 288 x 1000 / th (x 12 with the default scale)."""
    return _d(hash_price) * scale.usd_per_ph_day_per_hash_price


def usd_per_ph_day_to_hackathon_hash_price(usd_per_ph_day: Number, scale: HackathonScale = DEFAULT_SCALE) -> Decimal:
    """hash_price = USD per PH/s per day / (s x 288 x 1000 / th)."""
    return _d(usd_per_ph_day) / scale.usd_per_ph_day_per_hash_price


def hackathon_token_price_to_usd_per_mtok(token_price: Number, scale: HackathonScale = DEFAULT_SCALE) -> Decimal:
    """USD per million tokens = token_price x s x 1e6 (x 2.5 with the default scale)."""
    return _d(token_price) * scale.usd_per_mtok_per_token_price


def usd_per_mtok_to_hackathon_token_price(usd_per_mtok: Number, scale: HackathonScale = DEFAULT_SCALE) -> Decimal:
    """token_price = USD per million tokens / (s x 1e6)."""
    return _d(usd_per_mtok) / scale.usd_per_mtok_per_token_price


def hackathon_prices_to_real(
    *, energy_price: Number, hash_price: Number, token_price: Number, scale: HackathonScale = DEFAULT_SCALE
) -> RealPrices:
    """All three prices of one interval in real units (unrounded; round when storing)."""
    return RealPrices(
        price_usd_per_mwh=hackathon_energy_price_to_usd_per_mwh(energy_price, scale),
        hashprice_usd_per_ph_day=hackathon_hash_price_to_usd_per_ph_day(hash_price, scale),
        inference_price_usd_per_mtok=hackathon_token_price_to_usd_per_mtok(token_price, scale),
    )


# Hardware output.


def hackathon_hashrate_to_th_per_s(hashrate: Number, scale: HackathonScale = DEFAULT_SCALE) -> Decimal:
    """TH/s = hashrate units x th (hydro miner: 5000 x 0.06 = 300 TH/s)."""
    return _d(hashrate) * scale.th_per_s_per_hashrate_unit


def th_per_s_to_hackathon_hashrate(th_per_s: Number, scale: HackathonScale = DEFAULT_SCALE) -> Decimal:
    """hashrate units = TH/s / th."""
    return _d(th_per_s) / scale.th_per_s_per_hashrate_unit


def hackathon_tokens_to_tokens_per_s(tokens_per_interval: Number) -> Decimal:
    """tokens/s = tokens per interval / 300 s (the GPU's 1000 per interval is 3.33 tokens/s)."""
    return _d(tokens_per_interval) / INTERVAL_SECONDS


def tokens_per_s_to_hackathon_tokens(tokens_per_s: Number) -> Decimal:
    """tokens per interval = tokens/s x 300 s."""
    return _d(tokens_per_s) * INTERVAL_SECONDS
