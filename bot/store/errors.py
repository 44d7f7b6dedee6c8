"""The store's errors, under :class:`plugin.errors.ServiceError`.

    ServiceError                     plugin.errors
    └── StoreError                   the database failed or refused: nothing was written
        ├── UnknownRecordError       no request, scheduled run or timed grant with that id
        ├── InvalidStateError        the record is not in the state the call needs (e.g. done before approved)
        └── SelfApprovalError        the requester tried to approve their own request

SQLAlchemy, aiosqlite, psycopg and Alembic errors are translated into :class:`StoreError` at the
store's boundary with ``raise … from exc``; nothing above it sees a vendor exception.
"""

from __future__ import annotations

from plugin.errors import ServiceError


class StoreError(ServiceError):
    """The store could not be read or written; the operation did not happen."""


class UnknownRecordError(StoreError):
    """No record with that id (a fix request, a scheduled run, a timed grant)."""


class InvalidStateError(StoreError):
    """The record exists but is not in a state that allows the operation."""


class SelfApprovalError(StoreError):
    """The person who asked for a change tried to approve it themselves."""
