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
from services.indicator.spatial.models import (
    CoverageRule,
    Facility,
    Inspection,
    InspectionEvidence,
    InspectionResult,
    RegionExtent,
    RollupCount,
    RollupDirty,
    SpatialBatch,
    SpatialEvent,
    SpatialRun,
    SpatialUnit,
    ValueObject,
)
from services.indicator.sync.tables import SYNC
from services.indicator.systems.models import Indicator, IndicatorSystem, SubItem, SystemEvent
from services.indicator.values.models import ImportBatch, IndicatorValue, ValueHistory

__all__ = [
    "SYNC",
    "Base",
    "CoverageRule",
    "Evaluation",
    "EvaluationRule",
    "EvaluationRun",
    "Facility",
    "ImportBatch",
    "Indicator",
    "IndicatorSystem",
    "IndicatorValue",
    "Inspection",
    "InspectionEvidence",
    "InspectionResult",
    "Region",
    "RegionExtent",
    "RegionScore",
    "RollupCount",
    "RollupDirty",
    "SpatialBatch",
    "SpatialEvent",
    "SpatialRun",
    "SpatialUnit",
    "SubItem",
    "Submission",
    "SubmissionEvent",
    "SystemEvent",
    "ValueHistory",
    "ValueObject",
]
