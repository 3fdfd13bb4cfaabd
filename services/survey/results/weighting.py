"""Raking (iterative proportional fitting) of cell weights to population margins, with trimming.

It works on the cell table (region × age band × sex, a few thousand rows), never on
responses: every respondent of a cell gets the cell's weight. Formulas: docs/survey.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["RakeResult", "rake"]

VARS = ("region", "age_band", "sex")


@dataclass
class RakeResult:
    """Weights per sample cell (0 where the cell has no population margin) and the report."""

    weights: np.ndarray
    matched: np.ndarray
    report: dict[str, Any] = field(default_factory=dict)


def _category_index(keys: list[tuple[str, ...]]) -> tuple[np.ndarray, list[tuple[str, ...]]]:
    uniq: dict[tuple[str, ...], int] = {}
    idx = np.fromiter(
        (uniq.setdefault(k, len(uniq)) for k in keys), dtype=np.int64, count=len(keys)
    )
    return idx, list(uniq)


def rake(
    sample: list[tuple[str, str, str, int]],
    population: list[tuple[str, str, str, float]],
    margins: list[list[str]],
    *,
    trim_low: float = 0.3,
    trim_high: float = 5.0,
    max_iterations: int = 200,
    tolerance: float = 1e-6,
) -> RakeResult:
    """Rake sample cells (region, age, sex, n) to population margins; trim; report."""
    n = np.array([c[3] for c in sample], dtype=np.float64)
    pop_total = float(sum(p[3] for p in population))
    # Population totals per margin category, and each sample cell's category per margin.
    margin_idx: list[np.ndarray] = []
    margin_targets: list[np.ndarray] = []
    matched = np.ones(len(sample), dtype=np.bool_)
    empty: list[dict[str, Any]] = []
    for m in margins:
        cols = [VARS.index(v) for v in m]
        totals: dict[tuple[str, ...], float] = {}
        for p in population:
            key = tuple(str(p[i]) for i in cols)
            totals[key] = totals.get(key, 0.0) + p[3]
        cell_keys = [tuple(str(c[i]) for i in cols) for c in sample]
        matched &= np.array([totals.get(k, 0.0) > 0 for k in cell_keys], dtype=np.bool_)
        seen = {k for k, cnt in zip(cell_keys, n, strict=True) if cnt > 0}
        for key, total in totals.items():
            if total > 0 and key not in seen:
                empty.append({"margin": m, "category": list(key), "population": total})
        idx, cats = _category_index(cell_keys)
        margin_idx.append(idx)
        margin_targets.append(np.array([totals.get(k, 0.0) for k in cats]))

    active = matched & (n > 0)
    n_active = float(n[active].sum())
    w = np.zeros(len(sample))
    report: dict[str, Any] = {
        "margins": margins,
        "cells": len(sample),
        "respondents": int(n.sum()),
        "matched_respondents": int(n_active),
        "unmatched_respondents": int(n[~matched].sum()),
        "population_total": pop_total,
        "empty_categories": empty[:50],
        "empty_population": float(sum(e["population"] for e in empty)),
    }
    if n_active == 0:
        report.update(converged=False, iterations=0, reason="no respondent matches the margins")
        return RakeResult(weights=w, matched=active, report=report)

    w[active] = pop_total / n_active
    # Categories without respondents cannot be matched: rake to the reachable ones only.
    reach: list[np.ndarray] = []
    for idx, target in zip(margin_idx, margin_targets, strict=True):
        has = np.bincount(idx[active], weights=n[active], minlength=len(target)) > 0
        reach.append(has)
        # Keep the margins consistent: the reachable categories of every margin stand for
        # the whole population (the unreachable ones are reported as empty_categories).
        reachable = float(target[has].sum())
        if reachable > 0:
            target[has] *= pop_total / reachable

    def rake_once(
        w: np.ndarray, bounds: tuple[float, float] | None
    ) -> tuple[np.ndarray, int, float]:
        err = np.inf
        it = 0
        for step in range(1, max_iterations + 1):
            it = step
            for idx, target, has in zip(margin_idx, margin_targets, reach, strict=True):
                current = np.bincount(idx[active], weights=(n * w)[active], minlength=len(target))
                factor = np.ones(len(target))
                ok = has & (current > 0)
                factor[ok] = target[ok] / current[ok]
                w[active] *= factor[idx[active]]
                if bounds is not None:
                    # Bounded raking: weights never leave the trimming bounds, and the
                    # other cells of each margin take up what a capped cell cannot.
                    w[active] = np.clip(w[active], bounds[0], bounds[1])
            err = _margin_error(w, n, active, margin_idx, margin_targets, reach)
            if err < tolerance:
                break
        return w, it, err

    w, total_iterations, err = rake_once(w, None)
    # The mean weight is fixed by the margins (population / respondents): so are the bounds.
    mean_target = pop_total / n_active
    lo, hi = trim_low * mean_target, trim_high * mean_target
    out_of_bounds = active & ((w < lo * (1 - 1e-9)) | (w > hi * (1 + 1e-9)))
    trimmed_cells = int(out_of_bounds.sum())
    if trimmed_cells:
        w, it, err = rake_once(w, (lo, hi))
        total_iterations += it
    # Whatever trimming did last, report how far the margins are from their targets now.
    err = _margin_error(w, n, active, margin_idx, margin_targets, reach)
    wa, na = w[active], n[active]
    sum_w = float((na * wa).sum())
    sum_w2 = float((na * wa * wa).sum())
    report.update(
        converged=bool(err < max(tolerance, 1e-3)),
        iterations=total_iterations,
        trimmed_cells=trimmed_cells,
        capped_cells=int((active & ((w <= lo * (1 + 1e-9)) | (w >= hi * (1 - 1e-9)))).sum()),
        trim_bounds=[trim_low, trim_high],
        max_margin_error=float(err),
        sum_weights=sum_w,
        # Relative to the mean weight the margins imply (population / respondents).
        weight_mean=mean_target,
        weight_min=float(wa[na > 0].min() / mean_target),
        weight_max=float(wa[na > 0].max() / mean_target),
        deff=float(n_active * sum_w2 / (sum_w * sum_w)),
        n_eff=float(sum_w * sum_w / sum_w2),
    )
    return RakeResult(weights=w, matched=active, report=report)


def _margin_error(
    w: np.ndarray,
    n: np.ndarray,
    active: np.ndarray,
    margin_idx: list[np.ndarray],
    margin_targets: list[np.ndarray],
    reach: list[np.ndarray],
) -> float:
    worst = 0.0
    for idx, target, has in zip(margin_idx, margin_targets, reach, strict=True):
        current = np.bincount(idx[active], weights=(n * w)[active], minlength=len(target))
        ok = has & (target > 0)
        if ok.any():
            worst = max(worst, float(np.max(np.abs(current[ok] / target[ok] - 1.0))))
    return worst
