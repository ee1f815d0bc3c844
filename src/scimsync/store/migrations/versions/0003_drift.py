"""Drift detection: reconciliation runs and their persistent findings.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"

Doc = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "drift_runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("target_id", sa.String(36),
                  sa.ForeignKey("targets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("started", sa.String(32), nullable=False),
        sa.Column("finished", sa.String(32), nullable=True),
        sa.Column("stats", Doc, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_drift_runs_target", "drift_runs", ["target_id", "started"])
    op.create_table(
        "findings",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("target_id", sa.String(36),
                  sa.ForeignKey("targets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("directory_id", sa.String(36), nullable=False),
        sa.Column("class", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("resource_type", sa.String(32), nullable=False),
        sa.Column("resource_id", sa.String(36), nullable=True),
        sa.Column("remote_id", sa.String(255), nullable=True),
        sa.Column("evidence", Doc, nullable=False),
        sa.Column("remote", Doc, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("first_seen", sa.String(32), nullable=False),
        sa.Column("last_seen", sa.String(32), nullable=False),
        sa.Column("last_run", sa.String(36), nullable=False),
        sa.Column("closed", sa.String(32), nullable=True),
        sa.Column("accepted", Doc, nullable=True),
        sa.Column("accepted_until", sa.String(32), nullable=True),
        sa.UniqueConstraint("target_id", "class", "subject", name="ux_findings_subject"),
    )
    op.create_index("ix_findings_status", "findings", ["target_id", "status"])
    op.create_index("ix_findings_resource", "findings", ["directory_id", "resource_id"])


def downgrade() -> None:
    op.drop_table("findings")
    op.drop_table("drift_runs")
