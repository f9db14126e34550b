"""django-filter FilterSets of grid programs."""

from __future__ import annotations

import django_filters as filters

from grid.choices import EventSource, EventStatus, ProgramKind
from grid.models import Enrollment, GridEvent, GridProgram


class GridProgramFilterSet(filters.FilterSet):
    kind = filters.MultipleChoiceFilter(choices=ProgramKind.choices)

    class Meta:
        model = GridProgram
        fields = ("kind", "market", "is_active")


class EnrollmentFilterSet(filters.FilterSet):
    program = filters.CharFilter(field_name="program__code")
    site = filters.CharFilter(field_name="site__code")

    class Meta:
        model = Enrollment
        fields = ("program", "site")


class GridEventFilterSet(filters.FilterSet):
    """Events by status, source, program code, site code and window (ISO 8601 bounds)."""

    status = filters.MultipleChoiceFilter(choices=EventStatus.choices)
    source = filters.ChoiceFilter(choices=EventSource.choices)
    program = filters.CharFilter(field_name="program__code")
    site = filters.CharFilter(field_name="sites__code", distinct=True)
    starts_after = filters.IsoDateTimeFilter(field_name="starts_at", lookup_expr="gte")
    starts_before = filters.IsoDateTimeFilter(field_name="starts_at", lookup_expr="lt")

    class Meta:
        model = GridEvent
        fields = ("status", "source", "program", "site")
