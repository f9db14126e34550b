"""API of grid programs, for staff: programs and enrollments (read), events (read, create, cancel).

A new event goes through `grid.services.create_grid_event`, the rules of the admin and the VEN: a broken rule
answers 400 with field messages and stores nothing; an illegal lifecycle move answers 409.
"""

from __future__ import annotations

from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from core.parsers import StrictJSONParser
from grid import services
from grid.models import Enrollment, EventPerformance, GridEvent, GridProgram

from .filters import EnrollmentFilterSet, GridEventFilterSet, GridProgramFilterSet
from .serializers import (
    EnrollmentSerializer,
    GridEventCreateSerializer,
    GridEventSerializer,
    GridProgramSerializer,
)

STAFF = (permissions.IsAuthenticated, permissions.IsAdminUser)


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The event cannot make this move."
    default_code = "conflict"


class GridProgramViewSet(viewsets.ReadOnlyModelViewSet):
    """Grid programs the fleet may enroll in."""

    queryset = GridProgram.objects.all()
    serializer_class = GridProgramSerializer
    filterset_class = GridProgramFilterSet
    permission_classes = STAFF
    lookup_field = "code"
    ordering_fields = ("code", "market", "kind")
    ordering = ("market", "code", "id")


class EnrollmentViewSet(viewsets.ReadOnlyModelViewSet):
    """Sites enrolled in programs, with the MW committed and the window."""

    queryset = Enrollment.objects.select_related("site", "program")
    serializer_class = EnrollmentSerializer
    filterset_class = EnrollmentFilterSet
    permission_classes = STAFF
    ordering_fields = ("starts_at", "committed_mw")
    ordering = ("-starts_at", "id")


class GridEventViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Grid events, newest first, each with its sites' performance; POST notifies a new one (and re-plans)."""

    queryset = GridEvent.objects.select_related("program").prefetch_related(
        Prefetch("performances", queryset=EventPerformance.objects.select_related("site"))
    )
    serializer_class = GridEventSerializer
    filterset_class = GridEventFilterSet
    permission_classes = STAFF
    parser_classes = (StrictJSONParser,)
    ordering_fields = ("starts_at", "notified_at", "status")
    ordering = ("-starts_at", "-id")

    def get_serializer_class(self):
        return GridEventCreateSerializer if self.action == "create" else GridEventSerializer

    @extend_schema(
        request=GridEventCreateSerializer,
        responses={201: GridEventSerializer, 400: OpenApiResponse(description="A rule of the program is broken.")},
    )
    def create(self, request, *args, **kwargs):
        serializer = GridEventCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            event = services.create_grid_event(request=serializer.event_request(), actor=request.user)
        except services.GridRefused as refused:
            raise exceptions.ValidationError(refused.errors) from None
        event = self.get_queryset().get(pk=event.pk)
        return Response(GridEventSerializer(event).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: GridEventSerializer, 409: OpenApiResponse(description="Not open.")})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel a notified or active event."""
        event = self.get_object()
        try:
            services.cancel_event(event=event, actor=request.user, reason="cancelled through the API")
        except services.IllegalTransition as error:
            raise Conflict(str(error)) from None
        return Response(GridEventSerializer(self.get_queryset().get(pk=event.pk)).data)
