"""Non-human identities: what the ownership policy noticed, and credential revocations.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"

Doc = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    # Event types such as nhi.credentials_revoke_requested are the actions of deliveries
    # and dead letters too.
    # (SQLite does not enforce VARCHAR lengths.)
    if op.get_bind().dialect.name == "postgresql":
        for table in ("deliveries", "dead_letters"):
            op.alter_column(table, "action", type_=sa.String(64),
                            existing_type=sa.String(24), existing_nullable=False)
    op.create_table(
        "nhi_state",
        sa.Column("resource_id", sa.String(36), primary_key=True),
        sa.Column("directory_id", sa.String(36),
                  sa.ForeignKey("directories.id", ondelete="CASCADE"), nullable=False),
        sa.Column("resource_type", sa.String(32), nullable=False),
        sa.Column("managers", Doc, nullable=True),
        sa.Column("orphaned_since", sa.String(32), nullable=True),
        sa.Column("departed", Doc, nullable=True),
        sa.Column("notified", Doc, nullable=True),
        sa.Column("updated", sa.String(32), nullable=False),
    )
    op.create_index("ix_nhi_state_directory", "nhi_state", ["directory_id"])
    op.create_table(
        "nhi_revocations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("directory_id", sa.String(36),
                  sa.ForeignKey("directories.id", ondelete="CASCADE"), nullable=False),
        sa.Column("resource_type", sa.String(32), nullable=False),
        sa.Column("resource_id", sa.String(36), nullable=False),
        sa.Column("identity", sa.String(255), nullable=True),
        sa.Column("credential", sa.String(512), nullable=False),
        sa.Column("credential_type", sa.String(32), nullable=True),
        sa.Column("system", sa.String(255), nullable=True),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("requested", sa.String(32), nullable=False),
        sa.Column("acknowledged", sa.String(32), nullable=True),
        sa.Column("acknowledged_by", sa.String(255), nullable=True),
        sa.Column("note", sa.Text, nullable=True),
    )
    op.create_index("ix_nhi_revocations_open", "nhi_revocations",
                    ["directory_id", "acknowledged"])
    op.create_index("ix_nhi_revocations_resource", "nhi_revocations", ["resource_id"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("deliveries", "dead_letters"):
            op.alter_column(table, "action", type_=sa.String(24),
                            existing_type=sa.String(64), existing_nullable=False)
    op.drop_table("nhi_revocations")
    op.drop_table("nhi_state")
