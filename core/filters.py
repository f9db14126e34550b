"""The project's django-filter backend: a boolean filter given a value that is not a boolean answers 400.

django-filter reads `?is_applied=yes` (anything but true/false/1/0) as "not given" and returns every row, so a
client's typo looks like real data. Empty values keep meaning "not given" (what an HTML form sends for a blank
field; the schema marks them `allowEmptyValue`).
"""

from __future__ import annotations

from django_filters import BooleanFilter
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError

BOOLEAN_VALUES = {"", "true", "false", "1", "0"}


class StrictDjangoFilterBackend(DjangoFilterBackend):
    def get_filterset(self, request, queryset, view):
        filterset = super().get_filterset(request, queryset, view)
        if filterset is not None:
            errors = {
                name: ["Must be true or false."]
                for name, filter_ in filterset.filters.items()
                if isinstance(filter_, BooleanFilter)
                and any(value.lower() not in BOOLEAN_VALUES for value in request.query_params.getlist(name))
            }
            if errors:
                raise ValidationError(errors)
        return filterset
