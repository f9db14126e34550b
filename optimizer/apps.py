from django.apps import AppConfig


class OptimizerConfig(AppConfig):
    """Decisions: optimization runs, allocations, strategies, backtests and the Claude advisor."""

    name = "optimizer"
    verbose_name = "Optimizer"
