"""Limit/offset pagination that rejects malformed page bounds instead of silently ignoring them.

DRF's LimitOffsetPagination reads `?limit=abc` as "no limit given" and `?offset=-1` as 0, so a client's typo
returns a different page than it asked for. Here a bound that is not a non-negative integer, or a repeated one,
answers 400; a limit above MAX_LIMIT is capped (documented in the schema).
"""

from __future__ import annotations

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination

MAX_LIMIT = 1000


class StrictLimitOffsetPagination(LimitOffsetPagination):
    max_limit = MAX_LIMIT

    def paginate_queryset(self, queryset, request, view=None):
        errors = {}
        for name in (self.limit_query_param, self.offset_query_param):
            values = request.query_params.getlist(name)
            if len(values) > 1:
                errors[name] = ["Give this parameter once."]
            elif values and not (values[0].isascii() and values[0].isdigit()):
                errors[name] = ["A non-negative integer is required."]
        if errors:
            raise ValidationError(errors)
        return super().paginate_queryset(queryset, request, view)
