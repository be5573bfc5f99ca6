"""Persistence: SQLAlchemy models, migrations, and the transaction door used by the async edges."""
