"""API routes of this app, registered on the project's single router (energyarb.api_urls)."""

from .scenarios import ScenarioViewSet
from .views import OptimizationRunViewSet

routes: list[tuple] = [
    ("optimizer/runs", OptimizationRunViewSet, "optimizer-run"),
    ("scenarios", ScenarioViewSet, "scenario"),
]
