"""Enumerations of the real markets."""

from django.db import models


class Market(models.TextChoices):
    ERCOT = "ercot", "ERCOT (Texas)"
    ENTSOE = "entsoe", "ENTSO-E bidding zone"
    AEMO = "aemo", "AEMO NEM region"


class Currency(models.TextChoices):
    USD = "USD", "US dollar"
    EUR = "EUR", "Euro"
    AUD = "AUD", "Australian dollar"


class AncillaryService(models.TextChoices):
    """ERCOT's ancillary services (DAM market clearing prices for capacity, MCPC)."""

    REGUP = "REGUP", "Regulation up"
    REGDN = "REGDN", "Regulation down"
    RRS = "RRS", "Responsive reserve"
    NSPIN = "NSPIN", "Non-spinning reserve"
    ECRS = "ECRS", "ERCOT contingency reserve"


class LoadKind(models.TextChoices):
    ACTUAL = "actual", "Actual"
    FORECAST = "forecast", "Day-ahead forecast"


SYSTEM_ZONE = "SYSTEM"  # the zone name of a whole market's load (ERCOT total, or an AEMO region's own total)
