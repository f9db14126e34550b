"""URL wiring: the admin, the API under /api/, its schema and docs, the hackathon API under /mara/, the dashboard."""

from django.contrib import admin
from django.urls import include, path
from django.utils.module_loading import autodiscover_modules
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from optimizer.admin_scenarios import scenario_admin_view


def _autodiscover_admin() -> None:
    """Register every app's admin module except django-leaflet's (it needs GDAL, which we do not use)."""
    from django.apps import apps

    leaflet = apps.app_configs.pop("leaflet", None)
    try:
        autodiscover_modules("admin", register_to=admin.site)
    finally:
        if leaflet is not None:
            apps.app_configs["leaflet"] = leaflet


_autodiscover_admin()

urlpatterns = [
    path("admin/scenarios/", admin.site.admin_view(scenario_admin_view), name="admin-scenarios"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI from drf-spectacular-sidecar's static files; its start-up script is a separate URL
    # (?script), so the page runs under a Content-Security-Policy without inline scripts.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("api/", include("energyarb.api_urls")),
    path("mara/", include("mara.urls")),
    path("", include("optimizer.urls")),
]

handler400 = "core.errors.bad_request"
handler404 = "core.errors.not_found"
handler500 = "core.errors.server_error"
