"""Garbage-collector settings for a serving process.

A busy service allocates many short-lived objects (protobuf messages, rows, per-item decisions) and CPython's
default thresholds (700, 10, 10) run a full collection every ~70,000 allocations, each walking every tracked
object of the process: the imported modules of gRPC, SQLAlchemy and pydantic included. Measured on the
limiter's batched `Check` (bench/, 100 items per request, SQLite), the collector took about a third of the
server's CPU. Two remedies, as large Python services do:

- `gc.freeze()` once startup is over moves everything allocated so far to a permanent generation that
  collections no longer walk (it is not garbage: modules, settings, the app's own objects);
- a higher first-generation threshold, so that collections run less often; the requests' objects hold no
  reference cycles, so reference counting frees them and the collector finds nothing to do.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 50_000
"""Allocations (net of deallocations) between young collections; CPython's default is 700."""


def tune_for_serving() -> None:
    """Called once the service is started: freezes what startup allocated and spaces out collections."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
