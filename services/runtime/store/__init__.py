"""The database layer shared by all services: SQLAlchemy Core, a group-commit writer thread, Alembic.

    from services.runtime.store import Store, BatchHandler, StoreUnavailable, StoreTimeout, metadata
    from services.runtime.store.migrate import upgrade

See DESIGN.md §4 (store) for why writes are batched the way they are.
"""

from services.runtime.store.engine import Dialect, driver_connection, safe_url
from services.runtime.store.errors import StoreTimeout, StoreUnavailable, StoreUrlError
from services.runtime.store.ops import BatchHandler, HandlerContractError, RefusedOps, WriterStats
from services.runtime.store.schema import metadata
from services.runtime.store.store import Store

__all__ = [
    "BatchHandler",
    "Dialect",
    "HandlerContractError",
    "RefusedOps",
    "Store",
    "StoreTimeout",
    "StoreUnavailable",
    "StoreUrlError",
    "WriterStats",
    "driver_connection",
    "metadata",
    "safe_url",
]
