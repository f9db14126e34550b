"""ASCII digits only: numbers, dates and ids read from a request are written with 0-9.

Python's int(), float() and Decimal() read any Unicode decimal digit (U+0661 Arabic-Indic one, U+FF11 fullwidth
one, U+0967 Devanagari one ...) as its value, and DRF's, Django's and django-filter's number, date and related-id
fields are built on them, so `"capacity_kw": "\u0661\u0660"` bought 10 kW and `/api/optimizer/runs/\u0661/` showed
run 1. `install()` (run by
`CoreConfig.ready`) makes those fields refuse such a string with a field message (400 through the API, a form error
in the admin), for every serializer, filter and form at once; `has_foreign_digits` is what the middleware uses to
answer 404 for a path written in them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django import forms
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import fields as drf_fields
from rest_framework import relations as drf_relations
from rest_framework.exceptions import ValidationError as DrfValidationError

MESSAGE = "Write numbers, dates and ids with the ASCII digits 0-9."

# Fields whose value is a number, a date or time, or a numeric id (subclasses inherit the policy).
DRF_FIELDS: tuple[type, ...] = (
    drf_fields.IntegerField,
    drf_fields.FloatField,
    drf_fields.DecimalField,
    drf_fields.DateTimeField,
    drf_fields.DateField,
    drf_fields.TimeField,
    drf_fields.DurationField,
    drf_relations.PrimaryKeyRelatedField,
)
FORM_FIELDS: tuple[type, ...] = (
    forms.IntegerField,
    forms.FloatField,
    forms.DecimalField,
    forms.DateTimeField,
    forms.DateField,
    forms.TimeField,
    forms.DurationField,
    forms.ModelChoiceField,
)


def has_foreign_digits(text: str) -> bool:
    """Whether `text` holds a decimal digit other than 0-9 (ASCII text, the usual case, costs one C call)."""
    return not text.isascii() and any(char.isdecimal() and not char.isascii() for char in text)


def _guarded(method: Callable[..., Any], error: type[Exception]) -> Callable[..., Any]:
    @functools.wraps(method)
    def guarded(self, data, *args, **kwargs):
        if isinstance(data, str) and has_foreign_digits(data):
            raise error(MESSAGE, code="invalid")
        return method(self, data, *args, **kwargs)

    guarded.ascii_digits_only = True  # type: ignore[attr-defined]
    return guarded


def install() -> None:
    """Guard each field class's entry point: `run_validation` (DRF) and `clean` (Django forms). Idempotent."""
    for classes, name, error in (
        (DRF_FIELDS, "run_validation", DrfValidationError),
        (FORM_FIELDS, "clean", DjangoValidationError),
    ):
        for cls in classes:
            method = getattr(cls, name)
            if not getattr(method, "ascii_digits_only", False):  # inherited from a guarded class: guarded already
                setattr(cls, name, _guarded(method, error))
