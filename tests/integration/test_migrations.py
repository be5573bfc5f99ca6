"""Migrations build exactly the schema the models describe, and upgrade from empty cleanly."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from bot.store.db import Database, head_revision
from bot.store.models import Base


def test_the_migrated_schema_matches_the_models(migrated_url: str) -> None:
    database = Database(migrated_url)
    try:
        assert database.current_revision() == head_revision()
        with database.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
    finally:
        database.dispose()
    assert differences == [], "a model changed without a migration: write one"
