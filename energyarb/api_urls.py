"""One router under /api/ that every app's API registers its routes on."""

from rest_framework.routers import DefaultRouter

from optimizer.api.urls import routes as optimizer_routes
from sites.api.urls import routes as sites_routes
from sla.api.urls import routes as sla_routes

router = DefaultRouter()
for prefix, viewset, basename in (*sites_routes, *sla_routes, *optimizer_routes):
    router.register(prefix, viewset, basename=basename)

urlpatterns = router.urls
