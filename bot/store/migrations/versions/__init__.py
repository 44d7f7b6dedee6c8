"""Migration scripts, oldest first (``0001_…``); Alembic ignores this file."""
