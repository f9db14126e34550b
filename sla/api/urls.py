"""API routes of this app, registered on the project's single router (energyarb.api_urls)."""

from .views import TierViewSet

routes: list[tuple] = [
    ("tiers", TierViewSet, "tier"),
]
