"""Read-only API of the machines, for staff: devices, dispatch rounds, the command audit, telemetry rollups."""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import permissions, serializers, viewsets
from rest_framework.response import Response

from ..dashboard import machines_panel
from ..models import Device, DeviceCommand, DispatchRound, SiteTelemetryRollup
from .filters import DeviceCommandFilterSet, DeviceFilterSet, DispatchRoundFilterSet, RollupFilterSet
from .serializers import DeviceCommandSerializer, DeviceSerializer, DispatchRoundSerializer, RollupSerializer

STAFF = (permissions.IsAuthenticated, permissions.IsAdminUser)


class DeviceViewSet(viewsets.ReadOnlyModelViewSet):
    """Registered devices with their last observed state. One count and one joined query per page."""

    queryset = Device.objects.select_related("site", "hardware_model").order_by("site__code", "name", "id")
    serializer_class = DeviceSerializer
    filterset_class = DeviceFilterSet
    permission_classes = STAFF
    search_fields = ("name", "address")
    ordering_fields = ("name", "status", "last_seen_at", "power_w")


class DispatchRoundViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = DispatchRound.objects.order_by("-started_at", "-id")
    serializer_class = DispatchRoundSerializer
    filterset_class = DispatchRoundFilterSet
    permission_classes = STAFF
    ordering_fields = ("started_at",)


class DeviceCommandViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = DeviceCommand.objects.order_by("-created_at", "-id")
    serializer_class = DeviceCommandSerializer
    filterset_class = DeviceCommandFilterSet
    permission_classes = STAFF
    ordering_fields = ("created_at",)


class RollupViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = SiteTelemetryRollup.objects.select_related("site").order_by("site__code", "-bucket_start", "id")
    serializer_class = RollupSerializer
    filterset_class = RollupFilterSet
    permission_classes = STAFF
    ordering_fields = ("bucket_start",)


class _OneObjectSchema(AutoSchema):
    """The panel is one object, although the router names its action `list`."""

    def _is_list_view(self, serializer=None):
        return False


class MachinesViewSet(viewsets.ViewSet):
    """The dashboard's Machines panel: planned vs measured kW per site, devices online / faulted, dispatch lag."""

    permission_classes = STAFF
    schema = _OneObjectSchema()

    @extend_schema(
        responses=inline_serializer(
            "MachinesPanel",
            {
                "sites": serializers.ListField(child=serializers.DictField()),
                "round": serializers.DictField(allow_null=True),
            },
        )
    )
    def list(self, request):
        return Response(machines_panel())
