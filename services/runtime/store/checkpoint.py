"""SQLite WAL checkpoints on a thread of their own, off the writer's path.

In WAL mode every commit appends the pages it changed to the `-wal` file, and a *checkpoint* copies them back
into the database (then fsyncs both files). By default SQLite runs one inside the COMMIT that takes the WAL
past 1,000 pages, on the writing connection: the group-commit writer then stops for the copy and the fsync
while its callers wait. Keys spread over a large table make that nearly every batch (a 1,000-row batch on
distinct keys dirties about as many pages). Measured on this machine (a 1,000-row GCRA decision statement on
64,000 keys): 30 µs per row with SQLite's automatic checkpoints, 21 µs with the checkpoint off the writer.

So the writer's connection checkpoints itself only past a backstop of `WAL_BACKSTOP_PAGES` (this thread fell
behind or failed), and this thread runs a PASSIVE checkpoint after commits, at most once per interval. Neither
can copy frames that a long read still uses (both are PASSIVE): the WAL then grows until that read ends, as
with SQLite's defaults. PASSIVE never takes a lock the writer or the readers need (it copies what no reader
still uses and leaves the rest for the next one), so they run on while it copies and syncs. It is the usual
arrangement of SQLite servers that write continuously (e.g. Litestream's).
"""

from __future__ import annotations

import threading

import sqlalchemy as sa
import structlog

from services.runtime.store.errors import one_line

WAL_BACKSTOP_PAGES = 10_000
"""`wal_autocheckpoint` of every connection when checkpoints run on their own thread (40 MiB of 4 KiB pages)."""

WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024
"""`journal_size_limit`: what the `-wal` file is cut back to when SQLite restarts it from the beginning."""

log = structlog.get_logger(__name__)


class WalCheckpointer:
    """The checkpoint thread of one SQLite store. `notify` after commits; `stop` once the writer is done."""

    def __init__(self, engine: sa.Engine, interval_s: float) -> None:
        self._engine = engine
        self._interval_s = interval_s
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._main, name="foundation-store-checkpoint", daemon=True)
        self.checkpoints = 0
        """Checkpoints that ran (each copies what was committed since the previous one and no read still
        uses); one that found another process's checkpoint under way is not counted."""
        self.failures = 0

    def start(self) -> None:
        """Starts the thread."""
        self._thread.start()

    def notify(self) -> None:
        """Something was committed (called by the writer thread; does not block)."""
        self._wake.set()

    def stop(self, timeout: float | None = None) -> None:
        """Ends the thread after the checkpoint in progress, if any (SQLite checkpoints what is left when
        the last connection closes)."""
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _main(self) -> None:
        while True:
            self._wake.wait()
            if self._stopping.is_set():
                return
            self._wake.clear()
            self._checkpoint()
            # Commits during the pause set `_wake` again: the next checkpoint takes them all at once.
            if self._stopping.wait(self._interval_s):
                return

    def _checkpoint(self) -> None:
        try:
            # The DBAPI connection itself: an SQLAlchemy Connection would BEGIN first (services.runtime.store
            # .engine), and a checkpoint cannot run inside a transaction that has read.
            raw = self._engine.raw_connection()
            try:
                cursor = raw.cursor()
                busy, _, _ = cursor.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                cursor.close()
            finally:
                raw.close()
        except Exception as exc:  # noqa: BLE001 - the writer's backstop checkpoints meanwhile
            self.failures += 1
            if self.failures == 1 or self.failures % 100 == 0:
                log.warning("WAL checkpoint failed", failures=self.failures, error=one_line(exc))
            return
        if not busy:
            self.checkpoints += 1
