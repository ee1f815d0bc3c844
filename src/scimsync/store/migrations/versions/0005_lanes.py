"""Lanes: bulk work apart from the journal cursor, fenced leases, per-resource retries.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"

Doc = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("targets") as batch:
        batch.add_column(sa.Column("bulk", Doc, nullable=True))
        batch.add_column(sa.Column("lease_token", sa.String(36), nullable=True))
    op.create_table(
        "retries",
        sa.Column("target_id", sa.String(36), sa.ForeignKey("targets.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("resource_id", sa.String(36), primary_key=True),
        sa.Column("resource_type", sa.String(32), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("retry_at", sa.String(32), nullable=False),
        sa.Column("changed_at", sa.String(32), nullable=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("lifecycle", sa.String(16), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("retries")
    with op.batch_alter_table("targets") as batch:
        batch.drop_column("lease_token")
        batch.drop_column("bulk")
