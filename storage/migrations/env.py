"""Alembic environment: runs on the connection handed over by ``storage.engine.migrate``."""

from alembic import context
from sqlmodel import SQLModel

from storage import tables  # noqa: F401

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # `alembic` CLI use: build an engine from the configured URL
    from storage.engine import make_engine
    from tasks.settings import get_settings

    connection = make_engine(get_settings().registry_url).connect()

context.configure(connection=connection, target_metadata=SQLModel.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
