"""Alembic migrations for the store, run by ``await store.migrate()`` (no alembic.ini needed).

To add one after changing :mod:`bot.store.models`::

    .venv/bin/alembic -c bot/store/alembic.ini revision --autogenerate -m "what changed"

then read the generated file (batch operations, so SQLite can alter tables) and keep it working on
SQLite and PostgreSQL; ``tests/bot/store/test_migrations.py`` checks both against the models.
"""
