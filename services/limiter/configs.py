"""A short-lived per-process cache of limiter definitions, for validating and routing checks quickly.

It is never the authority on a decision: every decision statement joins `limiters` itself, so a quota
changed on another replica applies to the very next check. The cache only says which algorithm's statement
to use and what cost is acceptable; when it is stale the statement says so (services.limiter.batch.
StaleConfig) and the check looks again. When the store cannot be reached, the last known definitions still
tell each check its failure mode.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable

from services.limiter import store as sql
from services.limiter.algorithms import LimiterConfig
from services.runtime.errors import NotFound, Unavailable
from services.runtime.store import Store, StoreTimeout, StoreUnavailable

RESOURCE_TYPE = "limiter.foundation/Limiter"


class ConfigCache:
    """Limiter definitions by id, fresh for `ttl_s` seconds."""

    def __init__(self, store: Store, ttl_s: float = 1.0) -> None:
        self._store = store
        self._ttl = ttl_s
        self._entries: dict[str, tuple[float, LimiterConfig]] = {}
        self._forget_seq = 0
        self._forgotten_at: dict[str, int] = {}
        """Per id, the `_forget_seq` of its last forget while reads were in flight: a read that overlapped it
        may hold what it dropped. Cleared whenever no read is in flight, so it stays small."""
        self._reads_in_flight = 0

    def cached(self, ids: Iterable[str]) -> dict[str, LimiterConfig] | None:
        """The definitions of `ids` if every one is cached and fresh (the usual check), else None."""
        now = time.monotonic()
        found: dict[str, LimiterConfig] = {}
        for limiter_id in ids:
            entry = self._entries.get(limiter_id)
            if entry is None or now - entry[0] >= self._ttl:
                return None
            found[limiter_id] = entry[1]
        return found

    async def get_many(
        self,
        ids: Collection[str],
        *,
        timeout: float | None,  # noqa: ASYNC109
        fresh: Collection[str] = (),
    ) -> dict[str, LimiterConfig]:
        """The definitions of `ids`, those in `fresh` read from the store even when cached; NotFound for the
        first unknown one (in iteration order).

        With the store down, entries past their TTL (or asked `fresh`) are still used; unknown ones then raise
        the store error.
        """
        now = time.monotonic()
        found: dict[str, LimiterConfig] = {}
        missing: list[str] = []
        for limiter_id in ids:
            entry = self._entries.get(limiter_id)
            if entry is not None and now - entry[0] < self._ttl and limiter_id not in fresh:
                found[limiter_id] = entry[1]
            else:
                missing.append(limiter_id)
        if missing:
            asked, since = time.monotonic(), self._forget_seq
            self._reads_in_flight += 1
            try:
                loaded = await self._store.read(lambda conn: sql.get_limiters(conn, missing), timeout=timeout)
            except (StoreUnavailable, StoreTimeout) as failure:
                loaded = {i: self._entries[i][1] for i in missing if i in self._entries}
                if len(loaded) < len(missing):
                    raise Unavailable(
                        f"the limiter store did not answer in time ({failure.message})",
                        retry_after=1.0,
                        reason="STORE_UNAVAILABLE",
                    ) from failure
            else:
                # A write of this process (`put`, `forget`) may have landed while the read was in flight:
                # what it left is at least as new as what the read saw, so the read does not replace it. A
                # forget leaves nothing to compare with, so after one the read's answer serves this check only.
                stamp = time.monotonic()
                for config in loaded.values():
                    if self._forgotten_at.get(config.id, 0) <= since:
                        self._remember(stamp, config)
                for limiter_id in missing:
                    entry = self._entries.get(limiter_id)
                    if limiter_id not in loaded and entry is not None and entry[0] < asked:
                        del self._entries[limiter_id]
            finally:
                self._reads_in_flight -= 1
                if not self._reads_in_flight:
                    self._forgotten_at.clear()
            found.update(loaded)
        for limiter_id in ids:
            if limiter_id not in found:
                raise NotFound(RESOURCE_TYPE, f"limiters/{limiter_id}")
        return found

    def read_before(self, ids: Iterable[str], moment: float) -> set[str]:
        """Those of `ids` whose known definition was read (or written) before `moment` (time.monotonic())."""
        return {i for i in ids if (entry := self._entries.get(i)) is None or entry[0] < moment}

    def put(self, config: LimiterConfig) -> None:
        """Remembers a definition this process just wrote."""
        self._remember(time.monotonic(), config)

    def _remember(self, stamp: float, config: LimiterConfig) -> None:
        """Keeps `config` unless a newer version of it is known (by its update time)."""
        known = self._entries.get(config.id)
        if known is not None and known[1].update_us > config.update_us:
            return
        self._entries[config.id] = (stamp, config)

    def forget(self, ids: Iterable[str]) -> None:
        """Drops definitions known to be stale."""
        self._forget_seq += 1
        for limiter_id in ids:
            self._entries.pop(limiter_id, None)
            if self._reads_in_flight:
                self._forgotten_at[limiter_id] = self._forget_seq
