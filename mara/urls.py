"""``/mara/``: the hackathon market API's paths, with or without a trailing slash (the event's had none)."""

from django.urls import re_path

from . import views

app_name = "mara"

urlpatterns = [
    re_path(r"^prices/?$", views.PricesView.as_view(), name="prices"),
    re_path(r"^inventory/?$", views.InventoryView.as_view(), name="inventory"),
    re_path(r"^sites/?$", views.SitesView.as_view(), name="sites"),
    re_path(r"^machines/?$", views.MachinesView.as_view(), name="machines"),
]
