"""Enumerations of the commercial world, and the contract state machine."""

from django.db import models


class TierCode(models.TextChoices):
    PREMIUM = "premium", "Premium"
    STANDARD = "standard", "Standard"
    FLEXIBLE = "flexible", "Flexible"
    SPOT = "spot", "Spot"


class ContractStatus(models.TextChoices):
    REQUESTED = "requested", "Requested"
    ACTIVE = "active", "Active"
    COMPLETED = "completed", "Completed"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"
    TERMINATED = "terminated", "Terminated"


# The contract lifecycle: requested -> active -> completed, with rejected / cancelled / terminated exits.
# Terminal states have no way out.
CONTRACT_TRANSITIONS: dict[str, frozenset[str]] = {
    ContractStatus.REQUESTED: frozenset({ContractStatus.ACTIVE, ContractStatus.REJECTED, ContractStatus.CANCELLED}),
    ContractStatus.ACTIVE: frozenset({ContractStatus.COMPLETED, ContractStatus.CANCELLED, ContractStatus.TERMINATED}),
    ContractStatus.COMPLETED: frozenset(),
    ContractStatus.REJECTED: frozenset(),
    ContractStatus.CANCELLED: frozenset(),
    ContractStatus.TERMINATED: frozenset(),
}

OPEN_CONTRACT_STATUSES = (ContractStatus.REQUESTED, ContractStatus.ACTIVE)


class PlacementKind(models.TextChoices):
    """What opened a placement row; a row it took over from ends at the moment it begins."""

    ADMISSION = "admission", "Admission"
    FAILOVER = "failover", "Failover (site left service)"
    MIGRATION = "migration", "Migration (optimizer: cheaper elsewhere)"
    RETURN = "return", "Return (failed-over site back online)"
    REPLACEMENT = "replacement", "Replacement (lost capacity re-placed)"


class DeliverySource(models.TextChoices):
    """Where a delivery record's kW comes from; a measured record is never overwritten by the plan's estimate."""

    PLAN = "plan", "Applied plan"
    METER = "meter", "Measured (node telemetry)"
