"""The relational schema, shared by SQLite and PostgreSQL (docs/architecture.md: Storage)."""

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
    Text,
    UniqueConstraint,
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

targets = Table(
    "targets",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("directory_id", String(36), ForeignKey("directories.id", ondelete="CASCADE"),
           nullable=False),
    Column("name", String(255), nullable=False),
    Column("kind", String(32), nullable=False),  # "scim" or "webhook"
    Column("config", Doc, nullable=False),  # never secrets
    Column("secret", Text, nullable=True),  # encrypted credentials (scimsync.crypto)
    Column("status", String(16), nullable=False),  # active, paused, quarantined
    Column("cursor", BigInteger, nullable=False, default=0),  # last journal seq handled
    Column("failures", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=True),
    Column("retry_at", String(32), nullable=True),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", String(32), nullable=True),
    # Fences a lease: every write of a fenced run (links, deliveries, dead letters,
    # retries, the cursor and bulk progress) checks it in its own transaction.
    Column("lease_token", String(36), nullable=True),
    # Bulk work in progress (initial load, resync): {"kind", "type", "after", "seq", "at"};
    # the journal cursor moves on meanwhile.
    Column("bulk", Doc, nullable=True),
    # What the engine learned of the application by verifying its writes, apart from
    # the configuration a person sets: {fact: {"value", "at", "evidence"}}.
    Column("learned", Doc, nullable=True),
    # What the connector discovered of the app (SCIM discovery, connectors/shaping.py:
    # report), written by runs when it changes; shown by `targets show`.
    Column("discovered", Doc, nullable=True),
    Column("created", String(32), nullable=False),
    Column("updated", String(32), nullable=False),
    UniqueConstraint("directory_id", "name", name="ux_targets_name"),
)

# What the hub knows of each resource in a target: the remote id and the state it
# last applied there (docs/architecture.md: links).
links = Table(
    "links",
    metadata,
    Column("target_id", String(36), ForeignKey("targets.id", ondelete="CASCADE"),
           primary_key=True),
    Column("resource_id", String(36), primary_key=True),
    Column("resource_type", String(32), nullable=False),
    Column("remote_id", String(255), nullable=True),
    Column("applied_hash", String(64), nullable=True),
    Column("applied", Doc, nullable=True),
    Column("state", String(16), nullable=False),  # provisioned, deprovisioned, pending
    # What a run was about to send (create, update, deprovision, sync), written before
    # the request and cleared with the outcome: a link with an intent may be stale, and
    # the next run compares it with the application (sync/intents.py). `pending`: no
    # remote id known yet.
    Column("intent", String(16), nullable=True),
    Column("updated", String(32), nullable=False),
    Index("ix_links_remote", "target_id", "remote_id"),
)

# Deprovisionings the accidental-deletion guard holds back, one row per (target, user):
# `deferred` until a configuration change's pass has seen everyone, `held` for a
# person, `approved` until applied, `kept` when a person rejected them (kept until the
# configuration or the identity changes). docs/provisioning.md: the guard.
deprovision_holds = Table(
    "deprovision_holds",
    metadata,
    Column("target_id", String(36), ForeignKey("targets.id", ondelete="CASCADE"),
           primary_key=True),
    Column("resource_id", String(36), primary_key=True),
    Column("resource_type", String(32), nullable=False),
    Column("user_name", String(255), nullable=True),
    Column("state", String(16), nullable=False),  # deferred, held, approved, kept
    # The identity had left the directory (deleted or deactivated) when it was held
    # back, rather than its target's scope: leaving later does not release it.
    Column("gone", Boolean, nullable=False),
    Column("since", String(32), nullable=False),
    Index("ix_deprovision_holds_state", "target_id", "state"),
)

# A resource whose operation failed while the target answered other requests: tried
# again after retry_at, and a dead letter after too many attempts (sync/poison.py).
retries = Table(
    "retries",
    metadata,
    Column("target_id", String(36), ForeignKey("targets.id", ondelete="CASCADE"),
           primary_key=True),
    Column("resource_id", String(36), primary_key=True),
    Column("resource_type", String(32), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("retry_at", String(32), nullable=False),
    Column("changed_at", String(32), nullable=True),
    Column("seq", BigInteger, nullable=False),
    Column("lifecycle", String(16), nullable=True),
    Column("last_error", Text, nullable=True),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("target_id", String(36), ForeignKey("targets.id", ondelete="CASCADE"),
           nullable=False),
    Column("resource_type", String(32), nullable=False),
    Column("resource_id", String(36), nullable=False),
    Column("action", String(64), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("lifecycle", String(16), nullable=True),
    Column("changed_at", String(32), nullable=False),
    Column("applied_at", String(32), nullable=False),
    Column("lag_ms", Integer, nullable=False),
    Column("detail", Text, nullable=True),
    # initial (initial load, resync), incremental or remediation (scimsync.sync.work).
    Column("phase", String(16), nullable=True),
    Index("ix_deliveries_target", "target_id", "id"),
    Index("ix_deliveries_phase", "target_id", "phase", "id"),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("target_id", String(36), ForeignKey("targets.id", ondelete="CASCADE"),
           nullable=False),
    Column("resource_type", String(32), nullable=False),
    Column("resource_id", String(36), nullable=False),
    Column("action", String(64), nullable=False),
    Column("request", Doc, nullable=True),
    Column("response", Doc, nullable=True),
    Column("error", Text, nullable=False),
    Column("status", String(16), nullable=False),  # open, retried, discarded
    Column("created", String(32), nullable=False),
    Column("retried", String(32), nullable=True),
    Index("ix_dead_letters_target", "target_id", "status"),
)

# One full reconciliation of a target (docs/architecture.md: Drift): complete, incomplete (the
# target could not be read whole: nothing destructive was fixed) or not reconcilable.
drift_runs = Table(
    "drift_runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("target_id", String(36), ForeignKey("targets.id", ondelete="CASCADE"),
           nullable=False),
    Column("status", String(24), nullable=False),
    Column("trigger", String(16), nullable=False),  # manual, schedule
    Column("started", String(32), nullable=False),
    Column("finished", String(32), nullable=True),
    Column("stats", Doc, nullable=True),
    Column("error", Text, nullable=True),
    Index("ix_drift_runs_target", "target_id", "started"),
)

# A difference between a target and the directory, kept across runs: one row per
# (target, class, subject), where the subject is the hub id or `remote:<remote id>`.
findings = Table(
    "findings",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("target_id", String(36), ForeignKey("targets.id", ondelete="CASCADE"),
           nullable=False),
    Column("directory_id", String(36), nullable=False),
    Column("class", String(32), nullable=False),
    Column("subject", String(300), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("resource_type", String(32), nullable=False),
    Column("resource_id", String(36), nullable=True),
    Column("remote_id", String(255), nullable=True),
    Column("evidence", Doc, nullable=False),
    Column("remote", Doc, nullable=True),
    Column("status", String(16), nullable=False),  # open, remediated, accepted, resolved
    Column("first_seen", String(32), nullable=False),
    Column("last_seen", String(32), nullable=False),
    Column("last_run", String(36), nullable=False),
    Column("closed", String(32), nullable=True),
    Column("accepted", Doc, nullable=True),  # reason, approver, at
    Column("accepted_until", String(32), nullable=True),
    UniqueConstraint("target_id", "class", "subject", name="ux_findings_subject"),
    Index("ix_findings_status", "target_id", "status"),
    Index("ix_findings_resource", "directory_id", "resource_id"),
)

__all__ = [
    "dead_letters", "deliveries", "deprovision_holds", "directories", "drift_runs", "findings",
    "journal", "links", "memberships", "metadata", "resources", "targets", "tokens",
]

# Non-human identities (scimsync.nhi): per identity, what the ownership policy noticed
# (its owners' managers while they were active, since when it has had no active
# owner, which owners left, which notices were sent), and the credential
# revocations requested when one was suspended or deleted, until acknowledged.
nhi_state = Table(
    "nhi_state",
    metadata,
    Column("resource_id", String(36), primary_key=True),
    Column("directory_id", String(36), ForeignKey("directories.id", ondelete="CASCADE"),
           nullable=False),
    Column("resource_type", String(32), nullable=False),
    Column("managers", Doc, nullable=True),
    Column("orphaned_since", String(32), nullable=True),
    Column("departed", Doc, nullable=True),
    Column("notified", Doc, nullable=True),
    Column("updated", String(32), nullable=False),
    Index("ix_nhi_state_directory", "directory_id"),
)

nhi_revocations = Table(
    "nhi_revocations",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("directory_id", String(36), ForeignKey("directories.id", ondelete="CASCADE"),
           nullable=False),
    Column("resource_type", String(32), nullable=False),
    Column("resource_id", String(36), nullable=False),
    Column("identity", String(255), nullable=True),
    Column("credential", String(512), nullable=False),
    Column("credential_type", String(32), nullable=True),
    Column("system", String(255), nullable=True),
    Column("reason", String(32), nullable=False),
    Column("requested", String(32), nullable=False),
    Column("acknowledged", String(32), nullable=True),
    Column("acknowledged_by", String(255), nullable=True),
    Column("note", Text, nullable=True),
    Index("ix_nhi_revocations_open", "directory_id", "acknowledged"),
    Index("ix_nhi_revocations_resource", "resource_id"),
)
