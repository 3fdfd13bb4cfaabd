"""The body of every service's Alembic ``env.py``: one environment per service."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from sqlalchemy import MetaData

from shared.db import Database
from shared.dbtypes import UtcDateTime

__all__ = ["run_migrations"]

# PostGIS and SpatiaLite keep their own tables; autogenerate must not touch them.
_FOREIGN_TABLES = {
    "spatial_ref_sys",
    "geometry_columns",
    "geography_columns",
    "spatialite_history",
    "sqlite_sequence",
    "views_geometry_columns",
    "virts_geometry_columns",
    "geometry_columns_auth",
    "geometry_columns_statistics",
    "geometry_columns_field_infos",
    "geometry_columns_time",
    "spatial_ref_sys_aux",
    "sql_statements_log",
    "ElementaryGeometries",
    "KNN",
    "KNN2",
    "data_licenses",
    "SpatialIndex",
}


def _include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    return not (type_ == "table" and (name in _FOREIGN_TABLES or (name or "").startswith("idx_")))


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    # Custom column types are storage-identical to their impl: render that, so that
    # revision files do not import application code.
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations(metadata: MetaData) -> None:
    config = context.config
    db: Database = config.attributes["database"]
    with db.engine.connect() as connection:
        opts: dict[str, Any] = {}
        if db.is_postgres and db.schema:
            opts["version_table_schema"] = db.schema
        context.configure(
            connection=connection,
            target_metadata=metadata,
            include_object=_include_object,
            render_as_batch=not db.is_postgres,
            compare_type=True,
            render_item=_render_item,
            **opts,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
