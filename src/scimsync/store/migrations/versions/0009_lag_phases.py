"""Lag phases: each delivery says which phase its lag is reported under (initial load
and resyncs, incremental changes, remediation), indexed for per-phase percentiles.

Rows written before keep what their lifecycle tells: `initial` and `resync` were bulk
passes, `remediation` drift fixes, anything else counted as incremental.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("phase", sa.String(16), nullable=True))
    op.execute("UPDATE deliveries SET phase = CASE"
               " WHEN lifecycle IN ('initial', 'resync') THEN 'initial'"
               " WHEN lifecycle = 'remediation' THEN 'remediation'"
               " ELSE 'incremental' END")
    op.create_index("ix_deliveries_phase", "deliveries", ["target_id", "phase", "id"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_phase", "deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("phase")
