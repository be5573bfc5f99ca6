"""Alembic environment: migrations run against the URL given by bot.store.db.alembic_config."""

from __future__ import annotations

from alembic import context

from bot.store.db import create_db_engine
from bot.store.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url is not None, "alembic_config() sets sqlalchemy.url"  # noqa: S101

engine = create_db_engine(url)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
