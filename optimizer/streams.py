"""The revenue streams: one split of the money, used by run books, backtest scores, scenarios, the API and the
dashboard.

Every stream is signed (revenue positive, costs negative) and the nine add up to profit:

    mining + spot inference + SLA contracts + AS capacity + event payments
      - penalties (SLA credits, the N-1 exposure price, event shortfalls) - energy cost
      - coincident-peak charge (expected) - other costs (carbon, switching)  =  profit

The coincident-peak charges **avoided** (the expected charge of the load drawn before a likely peak, less the
charge of the load drawn in it) are money not paid: a memo beside the streams (``MEMO``), never added to them,
since the charge actually paid is already the ``cp_charge`` stream. No Django here: the backtest and the engine's
callers import it alike.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stream:
    key: str  # the JSON key (run books, summary.json, the API)
    label: str  # what people read (command printouts, the dashboard, docs)
    cost: bool = False  # paid out: the value is <= 0


STREAMS: tuple[Stream, ...] = (
    Stream("mining", "Mining"),
    Stream("spot_inference", "Spot inference"),
    Stream("sla_contracts", "SLA contracts"),
    Stream("as_capacity", "Ancillary-service capacity"),
    Stream("event_payments", "Demand-response event payments"),
    Stream("penalties", "Penalties (SLA credits, N-1 risk, event shortfalls)", cost=True),
    Stream("energy_cost", "Energy cost", cost=True),
    Stream("cp_charge", "Coincident-peak charge", cost=True),
    Stream("other_costs", "Other costs (carbon, switching)", cost=True),
)
MEMO = Stream("cp_charges_avoided", "Coincident-peak charges avoided (not paid)")

STREAM_KEYS: tuple[str, ...] = tuple(stream.key for stream in STREAMS)
LABELS: dict[str, str] = {stream.key: stream.label for stream in (*STREAMS, MEMO)}


def by_stream(
    *,
    mining: float,
    spot_inference: float,
    sla_contracts: float,
    energy_cost: float,
    as_capacity: float = 0.0,
    event_payments: float = 0.0,
    penalties: float = 0.0,
    cp_charge: float = 0.0,
    other_costs: float = 0.0,
    per: float = 1.0,
    digits: int | None = None,
) -> dict[str, float]:
    """The streams of amounts given as earned or paid (costs positive: they are signed here), each divided by
    ``per`` (hours, for USD/h) and rounded to ``digits`` if given. They add up to profit; the memo is not one."""
    signed = {
        "mining": mining,
        "spot_inference": spot_inference,
        "sla_contracts": sla_contracts,
        "as_capacity": as_capacity,
        "event_payments": event_payments,
        "penalties": -penalties,
        "energy_cost": -energy_cost,
        "cp_charge": -cp_charge,
        "other_costs": -other_costs,
    }
    scale = 1.0 / per
    return {key: _round(value * scale, digits) + 0.0 for key, value in signed.items()}


def profit(streams: dict[str, float]) -> float:
    """The streams' sum (a memo in the dict is left out)."""
    return sum(float(streams.get(key, 0.0)) for key in STREAM_KEYS)


def _round(value: float, digits: int | None) -> float:
    return value if digits is None else round(value, digits)
