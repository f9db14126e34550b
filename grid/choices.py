"""Enumerations of grid programs, and the grid-event state machine."""

from django.db import models


class ProgramKind(models.TextChoices):
    """What a program buys: a coincident-peak charge to avoid, an ancillary-service product, or event-based DR."""

    CP_4CP = "4cp", "Coincident peak: 4CP (Jun-Sep)"
    CP_12CP = "12cp", "Coincident peak: 12CP (every month)"
    RRS = "rrs", "Responsive Reserve (RRS)"
    ECRS = "ecrs", "ERCOT Contingency Reserve (ECRS)"
    NON_SPIN = "non_spin", "Non-Spinning Reserve"
    REG_UP = "reg_up", "Regulation Up"
    REG_DOWN = "reg_down", "Regulation Down"
    ERS_10 = "ers_10", "Emergency Response Service, 10 min"
    ERS_30 = "ers_30", "Emergency Response Service, 30 min"
    DR_EVENT = "dr_event", "Event-based demand response"


COINCIDENT_PEAK_KINDS = frozenset({ProgramKind.CP_4CP, ProgramKind.CP_12CP})
ANCILLARY_KINDS = frozenset(
    {
        ProgramKind.RRS,
        ProgramKind.ECRS,
        ProgramKind.NON_SPIN,
        ProgramKind.REG_UP,
        ProgramKind.REG_DOWN,
        ProgramKind.ERS_10,
        ProgramKind.ERS_30,
    }
)


class PaymentBasis(models.TextChoices):
    """How a program pays: per MW held per hour at the clearing price, fixed per MW-year, or per MWh curtailed."""

    CLEARING_PRICE = "clearing_price", "Hourly clearing price per MW"
    FIXED_MW_YEAR = "fixed_mw_year", "Fixed per MW-year"
    PER_MWH = "per_mwh", "Per MWh curtailed"
    NONE = "none", "No payment (charge avoided)"


class BaselineMethod(models.TextChoices):
    """What a reduction is measured from."""

    LOAD_AT_NOTICE = "load_at_notice", "Site load when notified"
    COMMITTED_LEVEL = "committed_level", "Committed MW of the enrollment"
    HIGH_5_OF_10 = "high_5_of_10", "Mean of the 5 highest of the last 10 like days"


class ReductionMode(models.TextChoices):
    """A requested reduction is by an amount (baseline minus X) or to a level (at most X)."""

    BY = "by", "Reduce by"
    TO = "to", "Reduce to"


class EventSource(models.TextChoices):
    STAFF = "staff", "Staff (admin)"
    API = "api", "API"
    PREDICTOR = "predictor", "Peak predictor"
    OPENADR = "openadr", "OpenADR VEN"


class EventStatus(models.TextChoices):
    NOTIFIED = "notified", "Notified"
    ACTIVE = "active", "Active"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"


# notified -> active -> completed, with a cancelled exit from either open state; terminal states have no way out.
EVENT_TRANSITIONS: dict[str, frozenset[str]] = {
    EventStatus.NOTIFIED: frozenset({EventStatus.ACTIVE, EventStatus.CANCELLED}),
    EventStatus.ACTIVE: frozenset({EventStatus.COMPLETED, EventStatus.CANCELLED}),
    EventStatus.COMPLETED: frozenset(),
    EventStatus.CANCELLED: frozenset(),
}
OPEN_EVENT_STATUSES = (EventStatus.NOTIFIED, EventStatus.ACTIVE)
