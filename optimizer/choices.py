"""Enumerations of decisions."""

from django.db import models


class RunTrigger(models.TextChoices):
    SCHEDULE = "schedule", "Periodic schedule"
    MANUAL = "manual", "Management command"
    ADMIN = "admin", "Admin action"
    API = "api", "API request"
    SCENARIO = "scenario", "Scenario"
    BACKTEST = "backtest", "Backtest"
    SITE = "site", "Site back online"
    FLEET = "fleet", "Devices left the plan"
    GRID = "grid", "Grid event"


class Scenario(models.TextChoices):
    """The demo scenarios (optimizer.scenarios), in the order the dashboard shows them."""

    HEAT_WAVE = "heat-wave", "Heat wave"
    FOLLOW_THE_SUN = "follow-the-sun", "Follow the sun"
    MAINTENANCE = "maintenance", "Maintenance"
    RENEWABLE = "renewable", "Renewable"


class Strategy(models.TextChoices):
    LP = "lp", "Engine (LP/MILP) on forecasts"
    GREEDY = "greedy", "Greedy profit per watt"
    SEED = "seed", "Original fixed formula"
    PERFECT = "perfect", "Engine on realized prices (upper bound)"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped (stale inputs or busy)"
    REJECTED = "rejected", "Not applied (time limit, or worse than the plan in force)"


class AdvisorStatus(models.TextChoices):
    """What became of Claude's advice on a run; the engine's plan stands unless advice is accepted."""

    NOT_REQUESTED = "not_requested", "Not requested"
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted (feasible and not worse)"
    REJECTED = "rejected", "Rejected (infeasible or worse)"
    NO_PROPOSAL = "no_proposal", "Narrative only, no proposal"
    UNAVAILABLE = "unavailable", "Unavailable (no key, timeout, error or unparsable reply)"
