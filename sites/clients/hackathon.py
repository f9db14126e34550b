"""Client of the MARA Hackathon 2025 market API (``GET /prices``, ``GET /inventory``).

Shapes (``../shared/product/original-api.md``)::

    GET /prices    -> [{"energy_price": 3.0, "hash_price": 4.0, "token_price": 2.0,
                        "timestamp": "2025-06-21T12:00:00"}, ...]          newest first, one per 5 minutes
    GET /inventory -> {"inference": {"asic": {"power": 15000, "tokens": 50000}, "gpu": {...}},
                       "miners": {"air": {"hashrate": 1000, "power": 3500}, "hydro": {...}, "immersion": {...}}}

Prices stay in the API's abstract per-interval units (they are stored as ``HackathonPrice``); ``sites.units``
declares how they map to USD. Inventory power is in watts per unit; the dataclasses expose kW, TH/s and
tokens/s through ``sites.units``.

Every field is validated before anything is returned: numbers must be finite and within plausible bounds,
timestamps must parse, intervals must be unique. One bad field rejects the whole answer (``SourceDataError``),
so a caller never stores half a response. Timestamps without an offset are read as UTC: the API's clock gave
none, and the event trace's 12:00-21:05 is kept as is rather than guessed into a local zone.

Configuration: ``settings.ENERGYARB["HACKATHON_API_URL"]``, ``["HTTP_TIMEOUT_S"]`` and, when set,
``["HACKATHON_API_KEY"]`` (sent as ``X-Api-Key``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

import httpx
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from sites.choices import DataSource
from sites.units import (
    DEFAULT_SCALE,
    HackathonScale,
    RealPrices,
    hackathon_hashrate_to_th_per_s,
    hackathon_prices_to_real,
    hackathon_tokens_to_tokens_per_s,
    watts_to_kw,
)

from .errors import SourceDataError, SourceError
from .http import get_json
from .parsing import parse_decimal, parse_timestamp

logger = logging.getLogger(__name__)

SOURCE = DataSource.HACKATHON_API
T = TypeVar("T")

# Plausible bounds of the abstract prices (the event itself served 1.1-3.0 energy, 1.0-4.0 hash, 0.65-3.0 token).
# Energy may be negative, as real energy prices can be; hash and token prices may not.
# The bounds cover every real price energyarb stores once converted at the declared scale (sites/units.py):
# energy -1,000..20,000 USD/MWh -> about -34..667, hashprice up to 10,000 -> 834, tokens up to 1,000 -> 400,
# so energyarb's own /mara/ prices (scarcity spikes included) always parse.
PRICE_BOUNDS: dict[str, tuple[Decimal, Decimal]] = {
    "energy_price": (Decimal(-34), Decimal(667)),
    "hash_price": (Decimal(0), Decimal(834)),
    "token_price": (Decimal(0), Decimal(400)),
}
PRICE_PLACES = 15  # HackathonPrice stores 15 decimal places; rounding here makes re-imports compare equal.

# Inventory per unit: positive, and below absurd ceilings (1 MW per unit, 1e9 hashrate or tokens).
MAX_POWER_W_PER_UNIT = Decimal(1_000_000)
MAX_OUTPUT_PER_UNIT = Decimal(1_000_000_000)
MINER_TYPES = ("air", "hydro", "immersion")
INFERENCE_TYPES = ("gpu", "asic")


@dataclass(frozen=True)
class HackathonPriceRow:
    """One 5-minute interval as the API priced it, in abstract units; ``interval_start`` is aware UTC."""

    interval_start: datetime
    energy_price: Decimal
    hash_price: Decimal
    token_price: Decimal

    def to_real(self, scale: HackathonScale = DEFAULT_SCALE) -> RealPrices:
        """USD/MWh, USD per PH/s per day and USD per million tokens under the declared scale."""
        return hackathon_prices_to_real(
            energy_price=self.energy_price, hash_price=self.hash_price, token_price=self.token_price, scale=scale
        )


@dataclass(frozen=True)
class HackathonMinerSpec:
    """One miner type of the API's inventory: abstract hashrate and watts per unit."""

    hashrate: Decimal
    power_w: Decimal

    @property
    def power_kw(self) -> Decimal:
        return watts_to_kw(self.power_w)

    def hashrate_th_per_s(self, scale: HackathonScale = DEFAULT_SCALE) -> Decimal:
        return hackathon_hashrate_to_th_per_s(self.hashrate, scale)


@dataclass(frozen=True)
class HackathonInferenceSpec:
    """One inference type of the API's inventory: tokens per unit per interval and watts per unit."""

    tokens: Decimal
    power_w: Decimal

    @property
    def power_kw(self) -> Decimal:
        return watts_to_kw(self.power_w)

    @property
    def tokens_per_s(self) -> Decimal:
        return hackathon_tokens_to_tokens_per_s(self.tokens)


@dataclass(frozen=True)
class HackathonInventory:
    """The API's hardware catalogue: miners by type (air, hydro, immersion), inference by type (gpu, asic)."""

    miners: Mapping[str, HackathonMinerSpec]
    inference: Mapping[str, HackathonInferenceSpec]


# Field parsing, shared with the CSV importer (``import_prices``, which also imports parse_decimal and
# parse_timestamp from here; they live in ``.parsing`` with the other clients'). Each raises SourceDataError with
# a message naming the field and the value, which the caller prefixes with where it came from (a line, an index).


def parse_price_row(raw: Mapping[str, object], *, allow_text: bool = False) -> HackathonPriceRow:
    """Validate one ``/prices`` item (or one trace CSV row, with ``allow_text``); extra keys are ignored."""
    missing = [name for name in ("timestamp", *PRICE_BOUNDS) if raw.get(name) in (None, "")]
    if missing:
        raise SourceDataError(f"missing {', '.join(missing)}")
    prices = {
        name: parse_decimal(
            raw[name], field=name, minimum=low, maximum=high, places=PRICE_PLACES, allow_text=allow_text
        )
        for name, (low, high) in PRICE_BOUNDS.items()
    }
    return HackathonPriceRow(interval_start=parse_timestamp(raw["timestamp"]), **prices)


def _object(value: object, where: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise SourceDataError(f"{where} is {type(value).__name__}, expected an object")
    return value


def _unit_spec(raw: object, where: str, output: str) -> tuple[Decimal, Decimal]:
    """(output per unit, watts per unit), both positive and below absurd ceilings."""
    spec = _object(raw, where)
    for name in (output, "power"):
        if name not in spec:
            raise SourceDataError(f"{where} has no {name}")
    zero = Decimal(0)
    per_unit = parse_decimal(
        spec[output], field=f"{where}.{output}", minimum=zero, minimum_exclusive=True, maximum=MAX_OUTPUT_PER_UNIT
    )
    power_w = parse_decimal(
        spec["power"], field=f"{where}.power", minimum=zero, minimum_exclusive=True, maximum=MAX_POWER_W_PER_UNIT
    )
    return per_unit, power_w


def parse_inventory(body: object) -> HackathonInventory:
    """Validate a ``/inventory`` body; every known type must be present, extra types are validated too."""
    root = _object(body, "inventory")
    sections = {}
    for section, required, output in (("miners", MINER_TYPES, "hashrate"), ("inference", INFERENCE_TYPES, "tokens")):
        if section not in root:
            raise SourceDataError(f"inventory has no {section}")
        types = _object(root[section], section)
        absent = [name for name in required if name not in types]
        if absent:
            raise SourceDataError(f"{section} has no {', '.join(absent)}")
        sections[section] = {name: _unit_spec(spec, f"{section}.{name}", output) for name, spec in types.items()}
    return HackathonInventory(
        miners={name: HackathonMinerSpec(hashrate=out, power_w=w) for name, (out, w) in sections["miners"].items()},
        inference={
            name: HackathonInferenceSpec(tokens=out, power_w=w) for name, (out, w) in sections["inference"].items()
        },
    )


def parse_prices(body: object) -> list[HackathonPriceRow]:
    """Validate a ``/prices`` body; returns the rows oldest first. Duplicate intervals reject the whole body."""
    if not isinstance(body, list):
        raise SourceDataError(f"prices is {type(body).__name__}, expected a list")
    rows: list[HackathonPriceRow] = []
    seen: dict[datetime, int] = {}
    for index, item in enumerate(body):
        try:
            row = parse_price_row(_object(item, "item"))
        except SourceDataError as exc:
            raise SourceDataError(f"prices[{index}]: {exc.message}") from None
        if row.interval_start in seen:
            raise SourceDataError(
                f"prices[{index}]: interval {row.interval_start.isoformat()} repeats prices[{seen[row.interval_start]}]"
            )
        seen[row.interval_start] = index
        rows.append(row)
    rows.sort(key=lambda row: row.interval_start)
    return rows


class HackathonClient:
    """Reads the hackathon market API. Raises only ``SourceError`` subclasses; performs no writes."""

    def __init__(
        self, *, base_url: str, timeout_s: float, api_key: str = "", transport: httpx.BaseTransport | None = None
    ) -> None:
        if not base_url:
            raise ImproperlyConfigured("The hackathon API base URL is empty (ENERGYARB['HACKATHON_API_URL']).")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.api_key = api_key
        self._transport = transport

    @classmethod
    def from_settings(cls) -> HackathonClient:
        config = settings.ENERGYARB
        return cls(
            base_url=config["HACKATHON_API_URL"],
            timeout_s=float(config["HTTP_TIMEOUT_S"]),
            api_key=config.get("HACKATHON_API_KEY", ""),
        )

    def fetch_prices(self) -> list[HackathonPriceRow]:
        """``GET /prices``, validated, oldest first."""
        return self._fetch("/prices", parse_prices)

    def fetch_inventory(self) -> HackathonInventory:
        """``GET /inventory``, validated."""
        return self._fetch("/inventory", parse_inventory)

    def _fetch(self, path: str, parse: Callable[[object], T]) -> T:
        url = f"{self.base_url}{path}"
        try:
            body = self._get_json(url)
            try:
                return parse(body)
            except SourceDataError as exc:
                raise SourceDataError(exc.message, source=SOURCE, url=url) from None
        except SourceError as exc:
            logger.warning("Hackathon API GET %s refused: %s", url, exc.message)
            raise

    def _get_json(self, url: str) -> object:
        headers = {"X-Api-Key": self.api_key} if self.api_key else {}
        return get_json(url, source=SOURCE, timeout_s=self.timeout_s, headers=headers, transport=self._transport)


def fetch_prices() -> list[HackathonPriceRow]:
    """The API's price list (oldest first) with the configured base URL, timeout and API key."""
    return HackathonClient.from_settings().fetch_prices()


def fetch_inventory() -> HackathonInventory:
    """The API's hardware catalogue with the configured base URL, timeout and API key."""
    return HackathonClient.from_settings().fetch_inventory()
