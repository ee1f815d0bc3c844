"""Directories, tokens, resources, memberships and the change journal.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None

Doc = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "directories",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("created", sa.String(32), nullable=False),
        sa.Column("journal_seq", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("settings", Doc, nullable=False),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(24), primary_key=True),
        sa.Column(
            "directory_id", sa.String(36),
            sa.ForeignKey("directories.id", ondelete="CASCADE"), nullable=True,
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created", sa.String(32), nullable=False),
        sa.Column("expires_at", sa.String(32), nullable=True),
        sa.Column("revoked_at", sa.String(32), nullable=True),
        sa.Column("last_used_at", sa.String(32), nullable=True),
    )
    op.create_index("ix_tokens_directory", "tokens", ["directory_id"])
    op.create_table(
        "resources",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "directory_id", sa.String(36),
            sa.ForeignKey("directories.id", ondelete="CASCADE"), nullable=False,
        ),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("external_id", sa.String(255), nullable=True),
        sa.Column("user_name", sa.String(255), nullable=True),
        sa.Column("user_name_ci", sa.String(255), nullable=True),
        sa.Column("display_name_ci", sa.String(512), nullable=True),
        sa.Column("email_ci", sa.String(512), nullable=True),
        sa.Column("active", sa.Boolean, nullable=True),
        sa.Column("created", sa.String(32), nullable=False),
        sa.Column("last_modified", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("doc", Doc, nullable=False),
    )
    op.create_index("ix_resources_dir_type_id", "resources", ["directory_id", "type", "id"])
    op.create_index(
        "ux_resources_user_name", "resources", ["directory_id", "type", "user_name_ci"],
        unique=True,
    )
    op.create_index(
        "ux_resources_external_id", "resources", ["directory_id", "type", "external_id"],
        unique=True,
    )
    op.create_index(
        "ix_resources_display_name", "resources", ["directory_id", "type", "display_name_ci"]
    )
    op.create_index("ix_resources_email", "resources", ["directory_id", "type", "email_ci"])
    op.create_index("ix_resources_active", "resources", ["directory_id", "type", "active"])
    op.create_index(
        "ix_resources_last_modified", "resources", ["directory_id", "type", "last_modified"]
    )
    op.create_table(
        "memberships",
        sa.Column(
            "group_id", sa.String(36), sa.ForeignKey("resources.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "member_id", sa.String(36), sa.ForeignKey("resources.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("directory_id", sa.String(36), nullable=False),
        sa.Column("member_type", sa.String(32), nullable=False),
    )
    op.create_index("ix_memberships_member", "memberships", ["member_id"])
    op.create_table(
        "journal",
        sa.Column(
            "directory_id", sa.String(36),
            sa.ForeignKey("directories.id", ondelete="CASCADE"), primary_key=True,
        ),
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("resource_type", sa.String(32), nullable=False),
        sa.Column("resource_id", sa.String(36), nullable=False),
        sa.Column("op", sa.String(24), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("changed", Doc, nullable=False),
        sa.Column("lifecycle", sa.String(16), nullable=True),
        sa.Column("detail", Doc, nullable=True),
        sa.Column("actor", sa.String(64), nullable=True),
        sa.Column("at", sa.String(32), nullable=False),
    )
    op.create_index("ix_journal_resource", "journal", ["directory_id", "resource_id"])


def downgrade() -> None:
    for name in ("journal", "memberships", "resources", "tokens", "directories"):
        op.drop_table(name)
