"""Report service tables: problems, tasks, projects, reports, jobs, outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-22 05:32:13.048037
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(length=20), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("actor_region", sa.String(length=12), nullable=False),
        sa.Column("node", sa.String(length=60), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "detail",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index("ix_audit_events_entity", ["entity", "entity_id"], unique=False)

    op.create_table(
        "problems",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("system_id", sa.Integer(), nullable=True),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("indicator_code", sa.String(length=40), nullable=True),
        sa.Column("object_type", sa.String(length=20), nullable=True),
        sa.Column("object_id", sa.String(length=60), nullable=True),
        sa.Column("severity", sa.String(length=8), nullable=False),
        sa.Column(
            "rules",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "evidence",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("origin_node", sa.String(length=60), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_problems")),
        sa.UniqueConstraint(
            "region_code",
            "period",
            "dedupe_key",
            name=op.f("uq_problems_region_code_period_dedupe_key"),
        ),
    )
    with op.batch_alter_table("problems", schema=None) as batch_op:
        batch_op.create_index("ix_problems_period_region", ["period", "region_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_problems_region_code"), ["region_code"], unique=False)

    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=False),
        sa.Column("sector", sa.String(length=100), nullable=False),
        sa.Column("need_description", sa.Text(), nullable=False),
        sa.Column("need_level", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("location", sa.String(length=300), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("total_investment", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("fiscal_investment", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("social_investment", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("start_month", sa.String(length=7), nullable=False),
        sa.Column("end_month", sa.String(length=7), nullable=False),
        sa.Column("year_ratio", sa.Float(), nullable=True),
        sa.Column("responsible_department", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
    )
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_projects_region_code"), ["region_code"], unique=False)

    op.create_table(
        "report_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("system_id", sa.Integer(), nullable=False),
        sa.Column(
            "formats",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(length=200), nullable=False),
        sa.Column(
            "error",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("report_id", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column(
            "requester",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_jobs")),
    )
    with op.batch_alter_table("report_jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_report_jobs_status"), ["status"], unique=False)

    op.create_table(
        "report_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("origin_node", sa.String(length=60), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(length=20), nullable=False),
        sa.Column("entity_key", sa.String(length=200), nullable=False),
        sa.Column("op", sa.String(length=12), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_outbox")),
        sa.UniqueConstraint("origin_node", "seq", name=op.f("uq_report_outbox_origin_node_seq")),
    )
    op.create_table(
        "report_receive_cursors",
        sa.Column("origin_node", sa.String(length=60), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("origin_node", name=op.f("pk_report_receive_cursors")),
    )
    op.create_table(
        "report_received",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("origin_node", sa.String(length=60), nullable=False),
        sa.Column("entity", sa.String(length=20), nullable=False),
        sa.Column("entity_key", sa.String(length=200), nullable=False),
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_received")),
        sa.UniqueConstraint(
            "origin_node",
            "entity",
            "entity_key",
            name=op.f("uq_report_received_origin_node_entity_entity_key"),
        ),
    )
    with op.batch_alter_table("report_received", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_report_received_region_code"), ["region_code"], unique=False
        )

    op.create_table(
        "report_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_templates")),
        sa.UniqueConstraint(
            "kind",
            "region_code",
            "version",
            name=op.f("uq_report_templates_kind_region_code_version"),
        ),
    )
    op.create_table(
        "reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("system_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("final_version", sa.Integer(), nullable=True),
        sa.Column("finalized_by", sa.String(length=100), nullable=True),
        sa.Column("finalized_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("origin_node", sa.String(length=60), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
        sa.UniqueConstraint(
            "kind",
            "region_code",
            "period",
            "system_id",
            name=op.f("uq_reports_kind_region_code_period_system_id"),
        ),
    )
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reports_region_code"), ["region_code"], unique=False)

    op.create_table(
        "responsible_units",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("contact", sa.String(length=200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_responsible_units")),
        sa.UniqueConstraint("code", name=op.f("uq_responsible_units_code")),
    )
    with op.batch_alter_table("responsible_units", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_responsible_units_region_code"), ["region_code"], unique=False
        )

    op.create_table(
        "rule_configs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "body",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_configs")),
        sa.UniqueConstraint(
            "kind", "region_code", "version", name=op.f("uq_rule_configs_kind_region_code_version")
        ),
    )
    op.create_table(
        "report_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "document",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("template_ref", sa.String(length=100), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"], ["reports.id"], name=op.f("fk_report_versions_report_id_reports")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_versions")),
        sa.UniqueConstraint(
            "report_id", "version", name=op.f("uq_report_versions_report_id_version")
        ),
    )
    with op.batch_alter_table("report_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_report_versions_report_id"), ["report_id"], unique=False
        )

    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("problem_id", sa.Integer(), nullable=False),
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("deadline", sa.Date(), nullable=False),
        sa.Column(
            "plan",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("last_progress_on", sa.Date(), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reopen_count", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["problem_id"], ["problems.id"], name=op.f("fk_tasks_problem_id_problems")
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["responsible_units.id"], name=op.f("fk_tasks_unit_id_responsible_units")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tasks_problem_id"), ["problem_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_tasks_region_code"), ["region_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_tasks_unit_id"), ["unit_id"], unique=False)

    op.create_table(
        "project_tasks",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("linked_by", sa.String(length=100), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_project_tasks_project_id_projects")
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_project_tasks_task_id_tasks")
        ),
        sa.PrimaryKeyConstraint("project_id", "task_id", name=op.f("pk_project_tasks")),
    )
    op.create_table(
        "report_artifacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["report_versions.id"],
            name=op.f("fk_report_artifacts_version_id_report_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_artifacts")),
        sa.UniqueConstraint(
            "version_id", "format", name=op.f("uq_report_artifacts_version_id_format")
        ),
    )
    with op.batch_alter_table("report_artifacts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_report_artifacts_version_id"), ["version_id"], unique=False
        )

    op.create_table(
        "task_reinspections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("task_revision", sa.Integer(), nullable=False),
        sa.Column("inspector", sa.String(length=100), nullable=False),
        sa.Column("inspected_on", sa.Date(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("findings", sa.Text(), nullable=False),
        sa.Column(
            "evidence",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("recorded_by", sa.String(length=100), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_task_reinspections_task_id_tasks")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_reinspections")),
    )
    with op.batch_alter_table("task_reinspections", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_task_reinspections_task_id"), ["task_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("task_reinspections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_reinspections_task_id"))

    op.drop_table("task_reinspections")
    with op.batch_alter_table("report_artifacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_report_artifacts_version_id"))

    op.drop_table("report_artifacts")
    op.drop_table("project_tasks")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tasks_unit_id"))
        batch_op.drop_index(batch_op.f("ix_tasks_region_code"))
        batch_op.drop_index(batch_op.f("ix_tasks_problem_id"))

    op.drop_table("tasks")
    with op.batch_alter_table("report_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_report_versions_report_id"))

    op.drop_table("report_versions")
    op.drop_table("rule_configs")
    with op.batch_alter_table("responsible_units", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_responsible_units_region_code"))

    op.drop_table("responsible_units")
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reports_region_code"))

    op.drop_table("reports")
    op.drop_table("report_templates")
    with op.batch_alter_table("report_received", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_report_received_region_code"))

    op.drop_table("report_received")
    op.drop_table("report_receive_cursors")
    op.drop_table("report_outbox")
    with op.batch_alter_table("report_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_report_jobs_status"))

    op.drop_table("report_jobs")
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_projects_region_code"))

    op.drop_table("projects")
    with op.batch_alter_table("problems", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_problems_region_code"))
        batch_op.drop_index("ix_problems_period_region")

    op.drop_table("problems")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_entity")

    op.drop_table("audit_events")
