"""API routes of this app, registered on the project's single router (energyarb.api_urls)."""

from .views import OptimizationRunViewSet

routes: list[tuple] = [
    ("optimizer/runs", OptimizationRunViewSet, "optimizer-run"),
]
