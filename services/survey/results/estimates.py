"""Weighted estimates with 95% confidence intervals from aggregated sums (docs/survey.md §5).

Every figure is a ratio R = Σ w·y / Σ w·k over respondents i, where k is the number of
scored items a respondent contributes to the target (1 for a question) and y their sum of
scores (mean) or of top-two answers (rate). The linearised variance, respondents as
clusters, is  v(R) = n/(n-1) · Σ w²(y - R·k)² / (Σ w·k)², expanded into sums SQL can make.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Estimate", "Sums", "estimate"]

Z95 = 1.959963984540054


@dataclass
class Sums:
    """Aggregates of one target in one group (w = the respondent's weight)."""

    n: int  # respondents
    items: int  # Σ k
    w: float  # Σ w (respondents)
    w2: float  # Σ w²
    wk: float  # Σ w·k
    ws: float  # Σ w·s
    wt: float  # Σ w·t
    w2kk: float
    w2sk: float
    w2ss: float
    w2tk: float
    w2tt: float


@dataclass
class Estimate:
    n: int
    items: int
    sum_w: float
    n_eff: float | None
    deff: float | None
    suppressed: bool
    rate: float | None = None
    rate_lo: float | None = None
    rate_hi: float | None = None
    mean: float | None = None
    mean_lo: float | None = None
    mean_hi: float | None = None


def _ratio_variance(n: int, wk: float, r: float, yy: float, yk: float, kk: float) -> float:
    if n < 2 or wk <= 0:
        return 0.0
    resid = yy - 2.0 * r * yk + r * r * kk
    return max(0.0, n / (n - 1) * resid / (wk * wk))


def _wilson(p: float, n_star: float) -> tuple[float, float]:
    z2 = Z95 * Z95
    denom = 1.0 + z2 / n_star
    centre = (p + z2 / (2.0 * n_star)) / denom
    half = Z95 * math.sqrt(p * (1.0 - p) / n_star + z2 / (4.0 * n_star * n_star)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def estimate(sums: Sums, min_n: int) -> Estimate:
    """Rate (top-two box, %) and mean score (0–100) with 95% CIs; suppressed below ``min_n``."""
    n_eff = sums.w * sums.w / sums.w2 if sums.w2 > 0 else None
    deff = sums.n * sums.w2 / (sums.w * sums.w) if sums.w > 0 else None
    est = Estimate(
        n=sums.n,
        items=sums.items,
        sum_w=sums.w,
        n_eff=n_eff,
        deff=deff,
        suppressed=sums.n < min_n or sums.wk <= 0,
    )
    if est.suppressed:
        return est
    mean = sums.ws / sums.wk
    v_mean = _ratio_variance(sums.n, sums.wk, mean, sums.w2ss, sums.w2sk, sums.w2kk)
    se = math.sqrt(v_mean)
    est.mean = mean
    est.mean_lo = max(0.0, mean - Z95 * se)
    est.mean_hi = min(100.0, mean + Z95 * se)
    p = sums.wt / sums.wk
    v_rate = _ratio_variance(sums.n, sums.wk, p, sums.w2tt, sums.w2tk, sums.w2kk)
    # Wilson interval on the effective sample size the linearised variance implies;
    # at p = 0 or 1 that variance is 0, and Kish's effective n stands in.
    n_star = p * (1 - p) / v_rate if v_rate > 0 and 0 < p < 1 else n_eff or float(sums.n)
    lo, hi = _wilson(p, max(n_star, 1.0))
    est.rate, est.rate_lo, est.rate_hi = 100.0 * p, 100.0 * lo, 100.0 * hi
    return est
