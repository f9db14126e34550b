"""Default ERCOT grid programs (idempotent by code; staff edit them in the admin afterwards).

Response times and event limits follow ERCOT's product definitions (Nodal Protocols section 3.17 and the ERS
technical requirements): Regulation follows AGC every 4 s, RRS from Load Resources trips on under-frequency
relay within 30 cycles (rounded up to 1 s), ECRS and ERS-10 deploy within 10 minutes, Non-Spin and ERS-30 within
30 minutes, ERS obligations last up to 8 cumulative hours a term. Ancillary services pay the hourly day-ahead
clearing price (MCPC) per MW held. The ERS rate and the DR event rate and penalties are placeholders for the
operator's own contract terms, not market facts.
"""

from __future__ import annotations

from decimal import Decimal

from .choices import BaselineMethod, PaymentBasis
from .choices import ProgramKind as K
from .models import GridProgram

D = Decimal
MCPC, FIXED = PaymentBasis.CLEARING_PRICE, PaymentBasis.FIXED_MW_YEAR
# code, name, kind, response s, notice min, min/max event min, max events/month, basis, rate, penalty, baseline
DEFAULT_PROGRAMS = (
    ("ercot-4cp", "4CP transmission charge", K.CP_4CP, 60, 0, 15, 240, None, PaymentBasis.NONE, 0, 0, "load"),
    ("ercot-rrs", "RRS (load resource)", K.RRS, 1, 0, 1, 60, None, MCPC, 0, 1000, "c"),
    ("ercot-ecrs", "ECRS", K.ECRS, 600, 0, 10, 120, None, MCPC, 0, 1000, "c"),
    ("ercot-nspin", "Non-Spin", K.NON_SPIN, 1800, 0, 30, 240, None, MCPC, 0, 1000, "c"),
    ("ercot-regup", "Regulation Up", K.REG_UP, 4, 0, 1, 60, None, MCPC, 0, 1000, "c"),
    ("ercot-regdn", "Regulation Down", K.REG_DOWN, 4, 0, 1, 60, None, MCPC, 0, 1000, "c"),
    ("ercot-ers10", "ERS-10", K.ERS_10, 600, 0, 10, 480, None, FIXED, 60000, 500, "load"),
    ("ercot-ers30", "ERS-30", K.ERS_30, 1800, 0, 30, 480, None, FIXED, 40000, 500, "load"),
    ("ercot-dr", "Event-based DR", K.DR_EVENT, 300, 60, 15, 240, 10, PaymentBasis.PER_MWH, 200, 300, "load"),
)
BASELINES = {"load": BaselineMethod.LOAD_AT_NOTICE, "c": BaselineMethod.COMMITTED_LEVEL}


def seed_programs() -> int:
    """Create the default ERCOT programs missing by code; returns how many were created."""
    created = 0
    for code, name, kind, response, notice, lo, hi, cap, basis, rate, penalty, baseline in DEFAULT_PROGRAMS:
        _, made = GridProgram.objects.get_or_create(
            code=code,
            defaults={
                "name": name,
                "market": "ERCOT",
                "kind": kind,
                "response_time_s": response,
                "notice_minutes": notice,
                "min_event_minutes": lo,
                "max_event_minutes": hi,
                "max_events_per_month": cap,
                "payment_basis": basis,
                "payment_rate": D(rate),
                "penalty_usd_per_mwh": D(penalty),
                "baseline_method": BASELINES[baseline],
            },
        )
        created += made
    return created
