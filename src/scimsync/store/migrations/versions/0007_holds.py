"""Deprovisionings held back by the accidental-deletion guard, one row per identity.

A guard hold no longer stops a target: the target runs on (joiners and updates flow)
and only the held deprovisionings wait, so the status `held` is no longer stored.

Revision ID: 0007
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0005"


def upgrade() -> None:
    op.create_table(
        "deprovision_holds",
        sa.Column("target_id", sa.String(36), sa.ForeignKey("targets.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("resource_id", sa.String(36), primary_key=True),
        sa.Column("resource_type", sa.String(32), nullable=False),
        sa.Column("user_name", sa.String(255), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("gone", sa.Boolean, nullable=False),
        sa.Column("since", sa.String(32), nullable=False),
    )
    op.create_index("ix_deprovision_holds_state", "deprovision_holds", ["target_id", "state"])
    # A target held the old way stopped before applying its journal entries: it runs
    # again, and the guard holds the same deprovisionings, now one by one.
    op.execute("UPDATE targets SET status = 'active' WHERE status = 'held'")


def downgrade() -> None:
    op.drop_index("ix_deprovision_holds_state", "deprovision_holds")
    op.drop_table("deprovision_holds")
