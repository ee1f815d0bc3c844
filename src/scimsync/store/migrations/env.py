"""Alembic environment: runs on the connection handed in by scimsync.store.engine.upgrade."""

from alembic import context

from scimsync.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `scimsync migrate`")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
