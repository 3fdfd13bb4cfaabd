"""Versioned rule configurations (diagnosis, three-colour) that a region sets for its area."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.report.audit import audit
from services.report.models import RuleConfig
from shared.errors import ValidationFailed
from shared.identity import Identity
from shared.regions import contains

__all__ = ["effective_config", "save_config"]

M = TypeVar("M", bound=BaseModel)


def _ancestors_or_self(session: Session, kind: str, region_code: str) -> list[RuleConfig]:
    rows = session.scalars(select(RuleConfig).where(RuleConfig.kind == kind)).all()
    return [r for r in rows if contains(r.region_code, region_code)]


def effective_config(
    session: Session, kind: str, region_code: str, model: type[M]
) -> tuple[M, dict[str, Any]]:
    """The config in force for a region: the latest version set by its nearest ancestor-or-self.

    Returns the parsed config and where it came from ({"region_code", "version"} or default).
    """
    candidates = _ancestors_or_self(session, kind, region_code)
    if not candidates:
        return model(), {"region_code": None, "version": 0, "source": "default"}
    # Nearest region wins (longest code prefix), then the latest version.
    best = max(candidates, key=lambda r: (len(r.region_code.rstrip("0")), r.version))
    return model.model_validate(best.body), {
        "region_code": best.region_code,
        "version": best.version,
        "source": "configured",
    }


def save_config(
    session: Session,
    kind: str,
    region_code: str,
    body: dict[str, Any],
    model: type[M],
    identity: Identity,
    node: str,
) -> tuple[M, int]:
    """Validate and store a new version of a region's config; returns it and its version."""
    try:
        parsed = model.model_validate(body)
    except ValidationError as exc:
        raise ValidationFailed(
            f"规则配置无效 (invalid {kind} configuration)",
            errors=[
                {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                for e in exc.errors()
            ],
        ) from exc
    last = session.scalar(
        select(func.max(RuleConfig.version)).where(
            RuleConfig.kind == kind, RuleConfig.region_code == region_code
        )
    )
    row = RuleConfig(
        kind=kind,
        region_code=region_code,
        version=(last or 0) + 1,
        body=parsed.model_dump(mode="json"),
        created_by=identity.subject,
    )
    session.add(row)
    session.flush()
    audit(session, "config", row.id, f"set_{kind}", identity, node, {"version": row.version})
    return parsed, row.version
