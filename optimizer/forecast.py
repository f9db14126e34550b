"""Forecasts of prices and demand from their own history, and the error metrics that judge them (pure numpy).

Two models, both per series, both shift-invariant (only the sampling step matters, not the calendar date):

- ``seasonal_naive``: tomorrow at this time is today at this time (the last full season repeated);
- ``ridge_forecast``: a ridge regression on daily (and, with two weeks of history, weekly) Fourier terms plus the
  value one season earlier, fitted with ``numpy.linalg.lstsq`` on the normal equations, and an AR(1) correction
  of the last residual that decays with the lead time. The Fourier terms learn the daily/weekly shape, the
  seasonal lag carries the multi-day level, and the residual correction carries what is happening right now into
  the next hours.

``forecast_prices(history[S, N], horizon_steps, step_minutes)`` is the helper for fleets of series;
``forecast_path`` is the one rule both planners use (ridge with two days of history, else persistence);
``RidgeForecast`` plugs into the backtest's ``lp`` strategy (``run_backtest(..., forecast=RidgeForecast())``) and
``FitCache`` keeps the live optimizer's fits between ticks (optimizer.inputs).
Metrics: ``mape`` (zeros and near-zeros of the actual left out) and ``pinball_loss`` (quantile forecasts).

``origin`` (fit_ridge, ridge_forecast, forecast_path) is the absolute step of ``history[0]`` (e.g. 5-minute steps
since the Unix epoch): the Fourier terms then see the clock, not the array index, so a fit made on one window
forecasts correctly from another one. The default 0 keeps series that always start at the same moment (the
backtest's) as they were.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

DAY_MINUTES = 1440
WEEK_MINUTES = 7 * DAY_MINUTES
DAILY_HARMONICS = 4  # sin/cos pairs at 1..4 cycles a day: enough for a morning and an evening peak
WEEKLY_HARMONICS = 2  # used only with at least two weeks of history
RIDGE_ALPHA = 1.0  # L2 penalty on the standardized coefficients (not on the intercept)
TRAINING_DAYS = 28  # the fit uses at most the last four weeks (cost and regime drift)


def seasonal_naive(history: np.ndarray, period: int, horizon: int | None = None) -> np.ndarray:
    """The last ``period`` values repeated over ``horizon`` steps (default one period); shape ``[..., horizon]``.

    With less than one period of history the last value is held (persistence).
    """
    values = np.asarray(history, dtype=float)
    horizon = period if horizon is None else horizon
    if period < 1:
        raise ValueError("period must be >= 1")
    if values.shape[-1] < period:
        return np.repeat(values[..., -1:], horizon, axis=-1)
    season = values[..., -period:]
    reps = -(-horizon // period)
    return np.tile(season, (1,) * (values.ndim - 1) + (reps,))[..., :horizon]


def _fourier(steps: np.ndarray, period: float, harmonics: int) -> np.ndarray:
    angle = 2.0 * np.pi * steps[:, None] * np.arange(1, harmonics + 1)[None, :] / period
    return np.concatenate([np.sin(angle), np.cos(angle)], axis=1)


@dataclass(frozen=True)
class RidgeFit:
    """Coefficients of one series' model (see ``fit_ridge``)."""

    day: int  # steps per day
    week: int | None  # steps per week, when weekly terms are used
    coef: np.ndarray  # [features], over standardized features
    mean: np.ndarray  # feature means
    scale: np.ndarray  # feature standard deviations
    intercept: float
    phi: float  # AR(1) of the residuals, per step
    fitted_at: int  # history length the fit saw (absolute step of its last value + 1)

    def features(self, steps: np.ndarray, lag_values: np.ndarray) -> np.ndarray:
        parts = [_fourier(steps, self.day, DAILY_HARMONICS)]
        if self.week is not None:
            parts.append(_fourier(steps, self.week, WEEKLY_HARMONICS))
        parts.append(lag_values[:, None])
        return (np.concatenate(parts, axis=1) - self.mean) / self.scale

    def predict(self, steps: np.ndarray, lag_values: np.ndarray) -> np.ndarray:
        return self.intercept + self.features(steps, lag_values) @ self.coef


def fit_ridge(
    history: np.ndarray, step_minutes: int, *, alpha: float = RIDGE_ALPHA, origin: int = 0
) -> RidgeFit | None:
    """Fit one series (1-D); None with less than two days of history (the caller falls back to seasonal-naive).

    Cost: one pass over at most ``TRAINING_DAYS`` of rows (about 7 ms for four weeks of 5-minute values).
    """
    y_all = np.asarray(history, dtype=float)
    day = DAY_MINUTES // step_minutes
    n = y_all.shape[0]
    if n < 2 * day:
        return None
    lo = max(day, n - TRAINING_DAYS * day)
    steps = np.arange(origin + lo, origin + n, dtype=float)
    y = y_all[lo:]
    lag = y_all[lo - day : n - day]
    week = WEEK_MINUTES // step_minutes if n >= 2 * WEEK_MINUTES // step_minutes else None
    parts = [_fourier(steps, day, DAILY_HARMONICS)]
    if week is not None:
        parts.append(_fourier(steps, week, WEEKLY_HARMONICS))
    parts.append(lag[:, None])
    raw = np.concatenate(parts, axis=1)
    mean, scale = raw.mean(axis=0), raw.std(axis=0)
    scale[scale < 1e-12] = 1.0
    x = (raw - mean) / scale
    intercept = float(y.mean())
    # Ridge through its normal equations (X'X + alpha I) b = X'(y - mean): a k x k system (k <= 13), so a fit
    # costs one pass over the rows instead of an SVD of the tall matrix (~30x faster on four weeks of 5 minutes).
    k = x.shape[1]
    coef = np.linalg.lstsq(x.T @ x + alpha * np.eye(k), x.T @ (y - intercept), rcond=None)[0]
    residual = y - intercept - x @ coef
    denominator = float(residual[:-1] @ residual[:-1])
    phi = float(np.clip(residual[1:] @ residual[:-1] / denominator, 0.0, 0.999)) if denominator > 0 else 0.0
    return RidgeFit(day, week, coef, mean, scale, intercept, phi, origin + n)


def ridge_forecast(
    history: np.ndarray, horizon: int, step_minutes: int, *, fit: RidgeFit | None = None, origin: int = 0
) -> np.ndarray:
    """``horizon`` steps after the last value of a 1-D ``history`` (``fit`` reuses earlier coefficients).

    Steps more than a day ahead take their seasonal lag from the forecast itself (recursive by whole days). With
    ``fit`` the history only needs its last day and one value more (the seasonal lags and the last residual).
    """
    y = np.asarray(history, dtype=float)
    fit = fit if fit is not None else fit_ridge(y, step_minutes, origin=origin)
    day = DAY_MINUTES // step_minutes
    if fit is None:
        return seasonal_naive(y, day, horizon) if y.shape[0] >= day else np.repeat(y[-1:], horizon)
    n = y.shape[0]
    if n <= day:
        raise ValueError("a fitted forecast needs more than one day of history (its seasonal lags)")
    # Residual of the last observed value, to carry the current deviation forward: r_{n+h} = phi^h r_n.
    last = fit.predict(np.array([origin + n - 1.0]), y[n - 1 - day : n - day])[0]
    residual = y[-1] - last
    extended = np.concatenate([y, np.empty(horizon)])
    for start in range(0, horizon, day):  # whole days: the lag of each block is already known
        stop = min(start + day, horizon)
        steps = np.arange(origin + n + start, origin + n + stop, dtype=float)
        lag = extended[n + start - day : n + stop - day]
        lead = np.arange(start + 1, stop + 1)
        extended[n + start : n + stop] = fit.predict(steps, lag) + residual * fit.phi**lead
    return extended[n:]


PERSISTENCE, RIDGE = "persistence", "ridge"
FORECASTS = (RIDGE, PERSISTENCE)  # the settings OPTIMIZER_FORECAST and `backtest --forecast` accept


def forecast_path(
    history: np.ndarray, horizon: int, step_minutes: int, *, fit: RidgeFit | None = None, origin: int = 0
) -> tuple[np.ndarray, str]:
    """The last observed value then ``horizon`` forecast steps (``[horizon + 1]``), and the model that made them.

    Ridge when it can be fitted (two days of history, or ``fit``), else persistence: with under two days the
    learned shape is not there yet, and the last value beats yesterday repeated a few hours ahead. The live
    optimizer (optimizer.inputs) and the backtest (``RidgeForecast``) both plan on this rule.
    """
    y = np.asarray(history, dtype=float)
    fit = fit if fit is not None else fit_ridge(y, step_minutes, origin=origin)
    if fit is None or horizon < 1:
        return np.repeat(y[-1:], horizon + 1), PERSISTENCE
    return np.concatenate([y[-1:], ridge_forecast(y, horizon, step_minutes, fit=fit, origin=origin)]), RIDGE


def period_means(path: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Mean of ``path`` (one value per step, ``path[0]`` now) over each period ``[bounds[i], bounds[i + 1])``."""
    sums = np.concatenate([[0.0], np.cumsum(np.asarray(path, dtype=float))])
    bounds = np.asarray(bounds, dtype=int)
    return (sums[bounds[1:]] - sums[bounds[:-1]]) / np.diff(bounds)


@dataclass(frozen=True, eq=False)
class _CachedFit:
    fit: RidgeFit | None  # None: too little history to fit, persistence until the next refit
    fitted_at: int  # absolute step after the last value it saw
    tail: np.ndarray  # the last values it saw (FitCache.tail_steps)


class FitCache:
    """Ridge fits kept between calls and refitted every ``refit_steps`` steps: the live optimizer's, per process.

    A kept fit is handed out only when it is at most ``refit_steps`` old at the end of the new history, not newer
    than it (a run rebuilt for an earlier moment must not learn from its future), and when the new history still
    holds the values it was fitted on (the last ``tail_steps`` of them, where both have them): stored history that
    changed since (a late correction, or another database, as in tests) is refitted rather than forecast with
    coefficients learned from other data.
    "Too little history to fit" is kept the same way, so a young series does not cost a four-week read every tick.
    """

    def __init__(self, refit_steps: int = 12, tail_steps: int = 288) -> None:
        self.refit_steps = refit_steps
        self.tail_steps = tail_steps
        self._entries: dict[str, _CachedFit] = {}

    def clear(self) -> None:
        self._entries.clear()

    def fresh(self, key: str, end: int) -> bool:
        """Something is kept for ``key`` young enough for a history ending at absolute step ``end`` (exclusive)."""
        entry = self._entries.get(key)
        return entry is not None and 0 <= end - entry.fitted_at < self.refit_steps

    def lookup(
        self, key: str, history: np.ndarray, origin: int, observed: np.ndarray | None = None
    ) -> tuple[bool, RidgeFit | None]:
        """``(usable, fit)`` for ``history`` (absolute steps from ``origin``; ``observed`` marks the steps really
        read, when the history has gaps filled in): usable when what is kept for ``key`` is fresh and the observed
        steps it shares with the values the fit saw are unchanged; ``fit`` is None when there was too little
        history to fit."""
        y = np.asarray(history, dtype=float)
        if not self.fresh(key, origin + y.shape[0]):
            return False, None
        entry = self._entries[key]
        if entry.fit is not None and y.shape[0] <= entry.fit.day:
            return False, None
        lo = entry.fitted_at - entry.tail.shape[0]  # absolute step of the first kept value
        first, stop = max(lo, origin), entry.fitted_at  # fresh: the fit's last step lies inside the history
        seen, kept = y[first - origin : stop - origin], entry.tail[first - lo :]
        if observed is not None:
            mask = np.asarray(observed, dtype=bool)[first - origin : stop - origin]
            seen, kept = seen[mask], kept[mask]
        if seen.size == 0 or not np.allclose(seen, kept, rtol=1e-6, atol=1e-6):
            return False, None
        return True, entry.fit

    def refit(self, key: str, history: np.ndarray, step_minutes: int, origin: int) -> RidgeFit | None:
        """Fit ``history`` and keep the fit (None under two days of history, kept as such)."""
        y = np.asarray(history, dtype=float)
        fit = fit_ridge(y, step_minutes, origin=origin)
        self._entries[key] = _CachedFit(fit, origin + y.shape[0], y[-self.tail_steps :].copy())
        return fit


def forecast_prices(history: np.ndarray, horizon_steps: int, step_minutes: int) -> np.ndarray:
    """Forecast every row of ``history[S, N]`` (or a 1-D series) ``horizon_steps`` ahead: ``[S, horizon]``."""
    values = np.asarray(history, dtype=float)
    if values.ndim == 1:
        return ridge_forecast(values, horizon_steps, step_minutes)
    return np.stack([ridge_forecast(row, horizon_steps, step_minutes) for row in values])


def mape(actual: np.ndarray, forecast: np.ndarray, *, floor: float = 1e-6) -> float:
    """Mean absolute percentage error, in percent, over the points where ``|actual| > floor``.

    Points whose actual is zero (or within ``floor`` of it, e.g. energy prices crossing zero) have no defined
    percentage error and are left out; NaN when no point is left.
    """
    a = np.asarray(actual, dtype=float)
    f = np.asarray(forecast, dtype=float)
    if a.shape != f.shape:
        raise ValueError(f"actual {a.shape} and forecast {f.shape} must have the same shape")
    keep = np.abs(a) > floor
    if not keep.any():
        return float("nan")
    return float(np.mean(np.abs((a[keep] - f[keep]) / a[keep])) * 100.0)


def pinball_loss(actual: np.ndarray, quantile_forecast: np.ndarray, q: float) -> float:
    """Mean pinball (quantile) loss of a ``q``-quantile forecast, in the series' units.

    loss = q (a - f) when the actual is above the forecast, (1 - q) (f - a) when below: at q = 0.5 it is half
    the mean absolute error.
    """
    if not 0.0 < q < 1.0:
        raise ValueError("q must be strictly between 0 and 1")
    a = np.asarray(actual, dtype=float)
    f = np.asarray(quantile_forecast, dtype=float)
    diff = a - f
    return float(np.mean(np.maximum(q * diff, (q - 1.0) * diff)))


def residual_quantile(history: np.ndarray, step_minutes: int, q: float, lead: int = 1) -> float:
    """The ``q``-quantile of in-sample ``lead``-step errors of the ridge model: add it to a point forecast."""
    y = np.asarray(history, dtype=float)
    fit = fit_ridge(y, step_minutes)
    if fit is None:
        return 0.0
    day = fit.day
    steps = np.arange(day, y.shape[0], dtype=float)
    residual = y[day:] - fit.predict(steps, y[: y.shape[0] - day])
    errors = residual[lead:] - residual[:-lead] * fit.phi**lead
    return float(np.quantile(errors, q))


@dataclass
class RidgeForecast:
    """A backtest ``Forecast`` (``(observed History, bounds) -> Outlook``) on the ridge model.

    Refits every ``refit_every`` intervals (the coefficients change slowly; the residual correction and the
    seasonal lags always use the newest observation). Energy price per site, PUE per site, hashprice, inference
    price and regional demand are each forecast; each planning period gets the mean over its intervals (offset 0
    is the interval being decided, whose values are published and used as they are).
    """

    name: ClassVar[str] = RIDGE
    refit_every: int = 12
    prior: object | None = None  # a backtest History just before the replayed window: learning starts warm
    _fits: dict = field(default_factory=dict, repr=False)

    def _series(self, key: str, values: np.ndarray, horizon: int, step_minutes: int) -> np.ndarray:
        fit = self._fits.get(key)
        if fit is None or values.shape[0] - fit.fitted_at >= self.refit_every or values.shape[0] < fit.fitted_at:
            fit = fit_ridge(values, step_minutes)
            if fit is not None:
                self._fits[key] = fit
        return forecast_path(values, horizon, step_minutes, fit=fit)[0]

    def _with_prior(self, observed):
        """``observed`` preceded by ``prior`` (arrays concatenated along time)."""
        prior = self.prior
        if prior is None:
            return observed
        from optimizer.backtest.history import History

        def cat(a, b):
            return np.concatenate([np.asarray(a, dtype=float), np.asarray(b, dtype=float)], axis=-1)

        return History(
            interval_starts=(*prior.interval_starts, *observed.interval_starts),
            energy_price_usd_per_mwh=cat(prior.energy_price_usd_per_mwh, observed.energy_price_usd_per_mwh),
            pue=cat(prior.pue, observed.pue),
            hashprice_usd_per_ph_day=cat(prior.hashprice_usd_per_ph_day, observed.hashprice_usd_per_ph_day),
            inference_price_usd_per_mtok=cat(prior.inference_price_usd_per_mtok, observed.inference_price_usd_per_mtok),
            inference_demand_mtok_per_h={
                r: cat(prior.inference_demand_mtok_per_h[r], v)
                for r, v in observed.inference_demand_mtok_per_h.items()
                if r in prior.inference_demand_mtok_per_h
            },
        )

    def __call__(self, observed, bounds: np.ndarray):
        from optimizer.backtest.replay import Outlook, persistence_forecast  # the backtest imports no Django

        bounds = np.asarray(bounds, dtype=int)
        if bounds[-1] <= 1:  # only the interval being decided (greedy, seed): its values are known, nothing to fit
            return persistence_forecast(observed, bounds)
        observed = self._with_prior(observed)
        horizon = int(bounds[-1]) - 1
        step_minutes = 5
        if len(observed.interval_starts) > 1:
            step_minutes = round((observed.interval_starts[1] - observed.interval_starts[0]).total_seconds() / 60)

        def one(key: str, values: np.ndarray, lower: float | None = None) -> np.ndarray:
            path = self._series(key, np.asarray(values, dtype=float), horizon, step_minutes)
            if lower is not None:
                path = np.maximum(path, lower)
            return period_means(path, bounds)

        energy = observed.energy_price_usd_per_mwh
        pue = observed.pue
        return Outlook(
            energy_price_usd_per_mwh=np.stack([one(f"energy{s}", energy[s]) for s in range(energy.shape[0])]),
            pue=np.stack([one(f"pue{s}", pue[s], 1.0) for s in range(pue.shape[0])]),
            hashprice_usd_per_ph_day=one("hashprice", observed.hashprice_usd_per_ph_day, 0.0),
            inference_price_usd_per_mtok=one("inference", observed.inference_price_usd_per_mtok, 0.0),
            inference_demand_mtok_per_h={
                region: one(f"demand:{region}", values, 0.0)
                for region, values in observed.inference_demand_mtok_per_h.items()
            },
        )


# Series names as the run's inputs record them ("energy_price_usd_per_mwh.site_3_norway", "hashprice_usd_per_ph_day",
# "inference_demand_mtok_per_h.europe"), said in words for staff: one phrase per kind, with a count of its members.
SERIES_WORDS = {
    "energy_price_usd_per_mwh": ("energy prices", "site"),
    "pue": ("PUE", "site"),
    "hashprice_usd_per_ph_day": ("the hashprice", ""),
    "inference_price_usd_per_mtok": ("the token price", ""),
    "inference_demand_mtok_per_h": ("inference demand", "region"),
}


def describe_series(keys: list[str] | tuple[str, ...]) -> str:
    """ "energy prices of 10 sites, PUE of 3 sites and the hashprice" for those series' names (unknown names as they
    are): what the explanation says instead of listing every internal name."""
    members: dict[str, list[str]] = {}
    for key in keys:
        kind, _, member = key.partition(".")
        members.setdefault(kind, []).append(member)
    phrases = []
    for kind, names in members.items():
        words, unit = SERIES_WORDS.get(kind, (kind, "series"))
        named = [name for name in names if name]
        if not named:
            phrases.append(words)
        elif len(named) == 1:
            phrases.append(f"{words} of {named[0]}")
        else:
            phrases.append(f"{words} of {len(named)} {unit}s")
    return phrases[0] if len(phrases) == 1 else f"{', '.join(phrases[:-1])} and {phrases[-1]}"
