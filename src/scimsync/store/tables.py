"""The relational schema, shared by SQLite and PostgreSQL (DESIGN.md: Storage and scale)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

# JSON documents are JSONB on PostgreSQL (indexable, compact), JSON text on SQLite.
Doc = JSON().with_variant(JSONB(), "postgresql")

directories = Table(
    "directories",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("created", String(32), nullable=False),
    # The last journal sequence number issued in this directory. Incrementing it takes
    # the directory row lock, which makes journal order equal commit order.
    Column("journal_seq", BigInteger, nullable=False, default=0),
    Column("settings", Doc, nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(24), primary_key=True),
    Column(
        "directory_id", String(36), ForeignKey("directories.id", ondelete="CASCADE"),
        nullable=True,
    ),
    Column("kind", String(16), nullable=False),  # "directory" or "admin"
    Column("name", String(255), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("created", String(32), nullable=False),
    Column("expires_at", String(32), nullable=True),
    Column("revoked_at", String(32), nullable=True),
    Column("last_used_at", String(32), nullable=True),
    Index("ix_tokens_directory", "directory_id"),
)

resources = Table(
    "resources",
    metadata,
    Column("id", String(36), primary_key=True),
    Column(
        "directory_id", String(36), ForeignKey("directories.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("type", String(32), nullable=False),
    Column("external_id", String(255), nullable=True),
    Column("user_name", String(255), nullable=True),
    # Lower-cased copies for attributes that are not caseExact (RFC7643 §2.2).
    Column("user_name_ci", String(255), nullable=True),
    Column("display_name_ci", String(512), nullable=True),
    Column("email_ci", String(512), nullable=True),
    Column("active", Boolean, nullable=True),
    Column("created", String(32), nullable=False),
    Column("last_modified", String(32), nullable=False),
    Column("version", Integer, nullable=False),
    Column("doc", Doc, nullable=False),
    Index("ix_resources_dir_type_id", "directory_id", "type", "id"),
    Index("ux_resources_user_name", "directory_id", "type", "user_name_ci", unique=True),
    Index("ux_resources_external_id", "directory_id", "type", "external_id", unique=True),
    Index("ix_resources_display_name", "directory_id", "type", "display_name_ci"),
    Index("ix_resources_email", "directory_id", "type", "email_ci"),
    Index("ix_resources_active", "directory_id", "type", "active"),
    Index("ix_resources_last_modified", "directory_id", "type", "last_modified"),
)

memberships = Table(
    "memberships",
    metadata,
    Column(
        "group_id", String(36), ForeignKey("resources.id", ondelete="CASCADE"), primary_key=True,
    ),
    Column(
        "member_id", String(36), ForeignKey("resources.id", ondelete="CASCADE"), primary_key=True,
    ),
    Column("directory_id", String(36), nullable=False),
    Column("member_type", String(32), nullable=False),
    Index("ix_memberships_member", "member_id"),
)

journal = Table(
    "journal",
    metadata,
    Column(
        "directory_id", String(36), ForeignKey("directories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("seq", BigInteger, primary_key=True),
    Column("resource_type", String(32), nullable=False),
    Column("resource_id", String(36), nullable=False),
    Column("op", String(24), nullable=False),
    Column("version", Integer, nullable=False),
    Column("changed", Doc, nullable=False),
    Column("lifecycle", String(16), nullable=True),  # joiner, mover, leaver
    Column("detail", Doc, nullable=True),
    Column("actor", String(64), nullable=True),
    Column("at", String(32), nullable=False),
    Index("ix_journal_resource", "directory_id", "resource_id"),
)

__all__ = ["directories", "journal", "memberships", "metadata", "resources", "tokens"]
