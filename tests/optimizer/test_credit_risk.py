"""The engine's price of a shortfall: the next credit band over the kWh that reach it, from the month so far."""

from __future__ import annotations

import pytest

from optimizer.engine.credit_risk import (
    CreditBand,
    credit_owed_pct,
    marginal_credit_usd_per_kwh,
    n_minus_1_risk_usd_per_kwh,
)

PREMIUM = (CreditBand(99.9, 10), CreditBand(99.0, 25), CreditBand(95.0, 100))
STANDARD = (CreditBand(95.0, 10), CreditBand(90.0, 25), CreditBand(80.0, 100))
# A hand-made month: 100 kW for 720 h at 2 USD/kWh.
DUE_KWH, CHARGE = 72_000.0, 144_000.0


def price(bands, short_kwh: float) -> float:
    return marginal_credit_usd_per_kwh(bands, charge_usd=CHARGE, due_kwh=DUE_KWH, short_kwh=short_kwh)


def test_a_clean_month_prices_the_first_band_over_its_kwh():
    # Premium: 10 % of the charge over 0.1 % of the month's energy = 100 x the price per kWh.
    assert price(PREMIUM, 0) == pytest.approx(0.10 * CHARGE / 72.0) == pytest.approx(100 * 2.0)
    # Standard: 10 % over 5 % = 2 x the price.
    assert price(STANDARD, 0) == pytest.approx(2 * 2.0)


def test_the_price_follows_the_month_so_far_and_falls_to_zero_at_the_cap():
    # 100 kWh short: past 99.9 % (10 % owed); the next band (25 % below 99 %) adds 15 % over 0.9 % of the energy.
    assert price(PREMIUM, 100) == pytest.approx(0.15 * CHARGE / 648) == pytest.approx(16.67 * 2.0, rel=1e-3)
    # Halfway to 99.9 %: still the first band's 100 x (linear between the steps).
    assert price(PREMIUM, 36) == pytest.approx(100 * 2.0)
    # Past 99 %: 75 % over 4 % = 18.75 x.
    assert price(PREMIUM, 0.02 * DUE_KWH) == pytest.approx(18.75 * 2.0)
    # Below 95 % the month is credited in full: a further kWh short costs nothing more.
    assert price(PREMIUM, 0.06 * DUE_KWH) == 0.0
    assert credit_owed_pct(PREMIUM, 50.0) == 100.0


def test_the_summed_price_never_passes_the_months_charge():
    """Walking the month down kWh by kWh at the marginal price costs exactly the bands, capped at the charge."""
    short, paid, step = 0.0, 0.0, 1.0
    while short < 0.2 * DUE_KWH:
        paid += price(PREMIUM, short) * step
        short += step
    assert paid == pytest.approx(CHARGE, rel=0.01)


def test_n_minus_1_spread_is_priced_as_the_risk_of_a_second_failure_not_as_a_credit():
    marginal = price(PREMIUM, 0)
    risk = n_minus_1_risk_usd_per_kwh(marginal)
    assert 0 < risk < 0.01 * marginal  # served meanwhile: only a site failure while exposed would cost credit
    assert n_minus_1_risk_usd_per_kwh(marginal, failure_rate_per_hour=0.01, failover_hours=1.0) == pytest.approx(
        0.01 * marginal
    )


def test_no_bands_or_nothing_due_costs_nothing():
    assert price((), 0) == 0.0
    assert marginal_credit_usd_per_kwh(PREMIUM, charge_usd=CHARGE, due_kwh=0.0) == 0.0
