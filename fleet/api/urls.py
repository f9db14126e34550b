"""API routes of this app, registered on the project's single router (energyarb.api_urls)."""

from .views import DeviceCommandViewSet, DeviceViewSet, DispatchRoundViewSet, MachinesViewSet, RollupViewSet

routes: list[tuple] = [
    ("fleet/devices", DeviceViewSet, "fleet-device"),
    ("fleet/dispatch-rounds", DispatchRoundViewSet, "fleet-dispatch-round"),
    ("fleet/commands", DeviceCommandViewSet, "fleet-command"),
    ("fleet/telemetry-rollups", RollupViewSet, "fleet-telemetry-rollup"),
    ("fleet/machines", MachinesViewSet, "fleet-machines"),
]
