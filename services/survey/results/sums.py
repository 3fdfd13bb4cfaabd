"""Running per-(profile, target) sums of included score rows: kept with every write, rebuildable.

A profile lies in one weighting cell, so these sums are all the results need; they turn
a scan of every score row into a read of a few hundred thousand rows at most.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

__all__ = ["SUM_COLUMNS", "add_response", "rebuild_sums"]

SUM_COLUMNS = ("n", "k1", "s1", "t1", "kk", "sk", "ss", "tk", "tt")

_ADD = text(
    "INSERT INTO score_sums (campaign_id, profile_id, target_id, "
    + ", ".join(SUM_COLUMNS)
    + ") SELECT campaign_id, profile_id, target_id, :sign, :sign * k, :sign * s, :sign * t, "
    ":sign * k * k, :sign * s * k, :sign * s * s, :sign * t * k, :sign * t * t "
    "FROM scores WHERE response_id = :r "
    # One order for every writer: concurrent submissions of a profile never deadlock.
    "ORDER BY profile_id, target_id "
    "ON CONFLICT (campaign_id, profile_id, target_id) DO UPDATE SET "
    + ", ".join(f"{c} = score_sums.{c} + excluded.{c}" for c in SUM_COLUMNS)
)


def add_response(session: Session, response_id: int, sign: int = 1) -> None:
    """Add (sign 1) or take away (sign -1) one response's score rows from the sums."""
    session.execute(_ADD, {"r": response_id, "sign": sign})


def rebuild_sums(session: Session, campaign_id: int) -> None:
    """Recompute a campaign's sums from its score rows (one set-based scan)."""
    session.execute(text("DELETE FROM score_sums WHERE campaign_id = :c"), {"c": campaign_id})
    session.execute(
        text(
            "INSERT INTO score_sums (campaign_id, profile_id, target_id, "
            + ", ".join(SUM_COLUMNS)
            + ") SELECT campaign_id, profile_id, target_id, COUNT(*), SUM(k), SUM(s), SUM(t), "
            "SUM(k * k), SUM(s * k), SUM(s * s), SUM(t * k), SUM(t * t) "
            "FROM scores WHERE campaign_id = :c AND included "
            "GROUP BY campaign_id, profile_id, target_id"
        ),
        {"c": campaign_id},
    )
