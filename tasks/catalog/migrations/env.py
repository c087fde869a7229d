"""Alembic environment: runs on the connection handed over by tasks.catalog.catalog.migrate."""
from alembic import context

from tasks.catalog.catalog import Base

target_metadata = Base.metadata
connection = context.config.attributes.get("connection")
if connection is None:  # `alembic` CLI use: build an engine from sqlalchemy.url
    from sqlalchemy import create_engine

    connectable = create_engine(context.config.get_main_option("sqlalchemy.url"))
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
