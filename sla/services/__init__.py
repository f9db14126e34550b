"""Writes across rows of the commercial world, by concern; import from here (`from sla.services import ...`).

- lifecycle: the contract state machine (`transition_contract` and its verbs), starting and ending on time;
- admission: `create_quote`, `create_contract`, `create_contract_from_quote`, `admit_contract` (no overbooking);
- failover: `fail_over_site` for a site going into maintenance;
- migration: what moving a running placement costs and when it pays (`migration_cost`, `migration_worth_it`), the
  locked writes of moves the optimizer decided (`move_placements`) and `replace_lost_capacity` for contracts left
  short;
- placements: `check_placement`, the rules every placement obeys whoever writes it (the admin's form included);
- uptime: `record_delivery` / `record_deliveries` (what the optimizer ran) and `issue_service_credits`;
- seeding: `seed_tiers`, `ensure_user`.
"""

from .admission import (
    QUOTE_VALIDITY,
    AdmissionRefused,
    CapacityRequest,
    Fleet,
    QuoteUnavailable,
    admit_contract,
    candidate_sites,
    contract_cap_refusal,
    create_contract,
    create_contract_from_quote,
    create_quote,
    displace_spot,
    load_bookings,
    newest_token_price,
    read_fleet,
)
from .failover import FailoverReport, fail_over_site
from .lifecycle import (
    IllegalTransition,
    approve_contract,
    cancel_contract,
    complete_contract,
    complete_due_contracts,
    reject_contract,
    start_due_contracts,
    terminate_contract,
    transition_contract,
)
from .migration import (
    MigrationCost,
    MoveReport,
    PlacementMove,
    ReplacementReport,
    cutover_unserved_kw,
    dwell_time,
    migration_cost,
    migration_saving_usd,
    migration_worth_it,
    move_placements,
    replace_lost_capacity,
    short_contracts,
)
from .placements import PlacementRefused, check_placement, contract_bookings, contract_limit_kw
from .seeding import DEFAULT_TIERS, SeededUser, ensure_user, seed_tiers
from .uptime import DeliveryRow, issue_service_credits, month_bounds, record_deliveries, record_delivery

__all__ = [
    "DEFAULT_TIERS",
    "QUOTE_VALIDITY",
    "AdmissionRefused",
    "CapacityRequest",
    "DeliveryRow",
    "FailoverReport",
    "Fleet",
    "IllegalTransition",
    "MigrationCost",
    "MoveReport",
    "PlacementMove",
    "PlacementRefused",
    "QuoteUnavailable",
    "ReplacementReport",
    "SeededUser",
    "admit_contract",
    "approve_contract",
    "cancel_contract",
    "candidate_sites",
    "check_placement",
    "complete_contract",
    "complete_due_contracts",
    "contract_bookings",
    "contract_cap_refusal",
    "contract_limit_kw",
    "create_contract",
    "create_contract_from_quote",
    "create_quote",
    "cutover_unserved_kw",
    "displace_spot",
    "dwell_time",
    "ensure_user",
    "fail_over_site",
    "issue_service_credits",
    "load_bookings",
    "migration_cost",
    "migration_saving_usd",
    "migration_worth_it",
    "month_bounds",
    "move_placements",
    "newest_token_price",
    "read_fleet",
    "record_deliveries",
    "record_delivery",
    "reject_contract",
    "replace_lost_capacity",
    "seed_tiers",
    "short_contracts",
    "start_due_contracts",
    "terminate_contract",
    "transition_contract",
]
