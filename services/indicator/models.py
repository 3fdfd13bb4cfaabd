"""All tables of the indicator service (imported by migrations and tests)."""

from services.indicator.approval.models import Submission, SubmissionEvent
from services.indicator.base import Base
from services.indicator.evaluation.models import (
    Evaluation,
    EvaluationRule,
    EvaluationRun,
    RegionScore,
)
from services.indicator.regions.models import Region
from services.indicator.systems.models import Indicator, IndicatorSystem, SubItem, SystemEvent
from services.indicator.values.models import ImportBatch, IndicatorValue, ValueHistory

__all__ = [
    "Base",
    "Evaluation",
    "EvaluationRule",
    "EvaluationRun",
    "ImportBatch",
    "Indicator",
    "IndicatorSystem",
    "IndicatorValue",
    "Region",
    "RegionScore",
    "SubItem",
    "Submission",
    "SubmissionEvent",
    "SystemEvent",
    "ValueHistory",
]
