"""Charts of a report (matplotlib, Agg, no pyplot state: safe in worker threads).

Each function takes part of a report document's facts and returns PNG bytes, or None when
there is nothing to draw (the renderers then say so in text).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import matplotlib
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from services.report.reports.render.fonts import cjk_font

__all__ = ["GRADE_COLOURS", "bar_rank", "radar", "tile_map", "trend"]

GRADE_COLOURS = {
    "green": "#2e9e4f",
    "yellow": "#e6b422",
    "red": "#d9434b",
    "grey": "#b0b0b0",
}
BAND_LABELS = {"green": "≥80 良好", "yellow": "60–80 一般", "red": "<60 较差", "grey": "无数据"}


def _figure(width: float, height: float) -> Figure:
    family = cjk_font().family
    # Process-wide and idempotent: labels created lazily at draw time (categorical ticks)
    # must use the CJK font too, or they would fall back to empty boxes.
    if matplotlib.rcParams["font.family"] != [family, "DejaVu Sans"]:
        matplotlib.rcParams["font.family"] = [family, "DejaVu Sans"]
        matplotlib.rcParams["axes.unicode_minus"] = False
    fig = Figure(figsize=(width, height), dpi=110)
    fig.set_layout_engine("tight")
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def radar(dimensions: Sequence[dict[str, Any]], title: str = "分维度得分") -> bytes | None:
    """Dimension scores (0–100) on a radar chart."""
    dims = [d for d in dimensions if d.get("score") is not None]
    if len(dims) < 3:
        return None
    labels = [str(d["name"]) for d in dims]
    values = [float(d["score"]) for d in dims]
    angles = [2 * math.pi * i / len(dims) for i in range(len(dims))]
    fig = _figure(4.6, 4.0)
    ax = fig.add_subplot(projection="polar")
    ax.plot([*angles, angles[0]], [*values, values[0]], color="#1f5fa8", linewidth=2)
    ax.fill([*angles, angles[0]], [*values, values[0]], color="#1f5fa8", alpha=0.2)
    ax.set_xticks(angles)
    ax.set_xticklabels(labels)
    ax.set_ylim(0, 100)
    ax.set_yticks([20, 40, 60, 80, 100])
    ax.set_title(title, pad=18)
    return _png(fig)


def trend(points: Sequence[dict[str, Any]], title: str = "城市健康指数历年趋势") -> bytes | None:
    """The index over the years."""
    pts = [p for p in points if p.get("score") is not None]
    if not pts:
        return None
    fig = _figure(5.6, 3.2)
    ax = fig.add_subplot()
    xs = [str(p["period"]) for p in pts]
    ys = [float(p["score"]) for p in pts]
    ax.plot(xs, ys, marker="o", color="#1f5fa8")
    for x, y in zip(xs, ys, strict=True):
        ax.annotate(f"{y:.1f}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center")
    ax.set_ylim(0, 105)
    ax.set_ylabel("指数")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def bar_rank(
    rows: Sequence[dict[str, Any]], highlight: str | None, title: str = "同级区划排名"
) -> bytes | None:
    """Scores of sibling (or child) regions, best first, one region highlighted."""
    ranked = sorted(
        (r for r in rows if r.get("score") is not None), key=lambda r: -float(r["score"])
    )
    if not ranked:
        return None
    height = max(2.4, 0.32 * len(ranked) + 1.0)
    fig = _figure(5.6, min(height, 14.0))
    ax = fig.add_subplot()
    names = [str(r["name"]) for r in ranked][::-1]
    scores = [float(r["score"]) for r in ranked][::-1]
    colours = ["#1f5fa8" if r["code"] == highlight else "#9db7d5" for r in ranked][::-1]
    ax.barh(names, scores, color=colours)
    for i, s in enumerate(scores):
        ax.text(s + 1, i, f"{s:.1f}", va="center", fontsize=8)
    ax.set_xlim(0, 110)
    ax.set_title(title)
    return _png(fig)


def band_of(score: float | None) -> str:
    """Colour band of an index score: ≥80 green, 60–80 yellow, <60 red, none grey."""
    if score is None:
        return "grey"
    if score >= 80:
        return "green"
    if score >= 60:
        return "yellow"
    return "red"


def tile_map(
    tiles: Sequence[dict[str, Any]], title: str = "下级区划评价分布（方格示意图）"
) -> bytes | None:
    """A tile-grid cartogram: one square per child region in code order, coloured by band.

    No region boundaries exist in the platform, so this deliberately does not look like a map
    of real shapes; the report text says so.
    """
    if not tiles:
        return None
    n = len(tiles)
    cols = max(1, math.ceil(math.sqrt(n * 1.4)))
    rows = math.ceil(n / cols)
    fig = _figure(max(5.0, min(1.25 * cols + 0.6, 7.5)), min(0.95 * rows + 1.3, 10.0))
    ax = fig.add_subplot()
    for i, t in enumerate(sorted(tiles, key=lambda t: str(t["code"]))):
        x, y = i % cols, rows - 1 - i // cols
        band = t.get("band") or band_of(t.get("score"))
        ax.add_patch(
            Rectangle((x + 0.04, y + 0.04), 0.92, 0.92, color=GRADE_COLOURS[band], alpha=0.9)
        )
        name = str(t["name"])
        label = name if len(name) <= 5 else name[:5] + "…"
        score = t.get("score")
        ax.text(x + 0.5, y + 0.58, label, ha="center", va="center", fontsize=8, color="black")
        ax.text(
            x + 0.5,
            y + 0.3,
            "—" if score is None else f"{float(score):.1f}",
            ha="center",
            va="center",
            fontsize=8,
        )
    ax.set_xlim(0, cols)
    ax.set_ylim(0, rows)
    ax.set_aspect("equal")
    ax.axis("off")
    handles = [Rectangle((0, 0), 1, 1, color=GRADE_COLOURS[b]) for b in BAND_LABELS]
    ax.legend(
        handles,
        list(BAND_LABELS.values()),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.02),
        ncol=4,
        fontsize=8,
        frameon=False,
    )
    ax.set_title(title)
    return _png(fig)
