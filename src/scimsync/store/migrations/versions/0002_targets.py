"""Targets, links, deliveries and dead letters for outbound provisioning.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"

Doc = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "targets",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("directory_id", sa.String(36),
                  sa.ForeignKey("directories.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("config", Doc, nullable=False),
        sa.Column("secret", sa.Text, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("cursor", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("retry_at", sa.String(32), nullable=True),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.String(32), nullable=True),
        sa.Column("created", sa.String(32), nullable=False),
        sa.Column("updated", sa.String(32), nullable=False),
        sa.UniqueConstraint("directory_id", "name", name="ux_targets_name"),
    )
    op.create_table(
        "links",
        sa.Column("target_id", sa.String(36),
                  sa.ForeignKey("targets.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("resource_id", sa.String(36), primary_key=True),
        sa.Column("resource_type", sa.String(32), nullable=False),
        sa.Column("remote_id", sa.String(255), nullable=True),
        sa.Column("applied_hash", sa.String(64), nullable=True),
        sa.Column("applied", Doc, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("updated", sa.String(32), nullable=False),
    )
    op.create_index("ix_links_remote", "links", ["target_id", "remote_id"])
    op.create_table(
        "deliveries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                  primary_key=True, autoincrement=True),
        sa.Column("target_id", sa.String(36),
                  sa.ForeignKey("targets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("resource_type", sa.String(32), nullable=False),
        sa.Column("resource_id", sa.String(36), nullable=False),
        sa.Column("action", sa.String(24), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("lifecycle", sa.String(16), nullable=True),
        sa.Column("changed_at", sa.String(32), nullable=False),
        sa.Column("applied_at", sa.String(32), nullable=False),
        sa.Column("lag_ms", sa.Integer, nullable=False),
        sa.Column("detail", sa.Text, nullable=True),
    )
    op.create_index("ix_deliveries_target", "deliveries", ["target_id", "id"])
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                  primary_key=True, autoincrement=True),
        sa.Column("target_id", sa.String(36),
                  sa.ForeignKey("targets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("resource_type", sa.String(32), nullable=False),
        sa.Column("resource_id", sa.String(36), nullable=False),
        sa.Column("action", sa.String(24), nullable=False),
        sa.Column("request", Doc, nullable=True),
        sa.Column("response", Doc, nullable=True),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created", sa.String(32), nullable=False),
        sa.Column("retried", sa.String(32), nullable=True),
    )
    op.create_index("ix_dead_letters_target", "dead_letters", ["target_id", "status"])


def downgrade() -> None:
    for name in ("dead_letters", "deliveries", "links", "targets"):
        op.drop_table(name)
