"""Alembic environment for the store.

``Store.migrate()`` hands over an open connection (``config.attributes["connection"]``) inside a
transaction it already holds under a lock; the ``alembic`` command line (``-c bot/store/alembic.ini``)
connects with ``sqlalchemy.url`` instead, or writes SQL with ``--sql``.
"""

from __future__ import annotations

from logging.config import fileConfig
from typing import Any

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection, create_engine, pool

from bot.store.models import Base, UTCDateTime


def _render_item(kind: str, item: Any, autogen_context: AutogenContext) -> str | bool:
    # Migrations must not import the models (they change); UTCDateTime is DateTime(timezone=True) in the database.
    if kind == "type" and isinstance(item, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


_OPTIONS: dict[str, Any] = {
    "target_metadata": Base.metadata,
    "render_as_batch": True,
    "compare_type": True,
    "render_item": _render_item,
}


def _run(connection: Connection) -> None:
    context.configure(connection=connection, **_OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    if config.config_file_name is not None:
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    url = config.get_main_option("sqlalchemy.url")
    if context.is_offline_mode():
        context.configure(url=url, literal_binds=True, **_OPTIONS)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(str(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


_main()
