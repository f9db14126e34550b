"""API routes of this app, registered on the project's single router (energyarb.api_urls).

`extra_urlpatterns` are plain views outside the router: the original product's `POST /api/sla/request`
(no trailing slash, as the original served it; with one also accepted).
"""

from django.urls import re_path

from .views import ContractViewSet, OriginalSlaRequestView, QuoteViewSet, TierViewSet

routes: list[tuple] = [
    ("tiers", TierViewSet, "tier"),
    ("sla/quotes", QuoteViewSet, "quote"),
    ("contracts", ContractViewSet, "contract"),
]

extra_urlpatterns = [
    re_path(r"^sla/request/?$", OriginalSlaRequestView.as_view(), name="sla-request"),
]
