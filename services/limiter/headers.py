"""Ready-made HTTP headers of a decision (IETF draft-ietf-httpapi-ratelimit-headers, structured fields).

`RateLimit-Policy: "<limiter>";q=<limit>;w=<window s>` describes the quota, `RateLimit: "<limiter>";r=<remaining>
;t=<reset s>` the key's state, and `Retry-After: <s>` (RFC 9110, whole seconds, rounded up) comes with a denial.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Generic, TypeVar

from services.limiter.algorithms import View, ceil_div

MICROS = 1_000_000

H = TypeVar("H")


def seconds_up(micros: int) -> int:
    """Whole seconds, rounded up (a client waiting that long is never early)."""
    return ceil_div(max(0, micros), MICROS)


@functools.lru_cache(maxsize=4096)
def policy(limiter_id: str, limit: int, period_us: int) -> str:
    """`RateLimit-Policy` of a limiter (cached: it changes only with the limiter)."""
    return f'"{limiter_id}";q={limit};w={max(1, seconds_up(period_us))}'


def state(limiter_id: str, view: View) -> str:
    """`RateLimit` of a key after a decision (runs once per Check item: seconds_up inlined)."""
    return f'"{limiter_id}";r={view.remaining};t={-(-max(0, view.reset_after_us) // MICROS)}'


def retry_after(view: View) -> str:
    """`Retry-After` of a denial: whole seconds, at least 1."""
    return str(max(1, seconds_up(view.retry_after_us)))


def for_item(limiter_id: str, period_us: int, view: View, allowed: bool) -> dict[str, str]:
    """The headers of one decided item."""
    headers = {
        "RateLimit-Policy": policy(limiter_id, view.limit, period_us),
        "RateLimit": state(limiter_id, view),
    }
    if not allowed:
        headers["Retry-After"] = retry_after(view)
    return headers


class MostRestrictive(Generic[H]):
    """Chooses a request's headers among its items' as they are decided: the denial that waits longest, else
    the item with the least remaining; the first one on ties."""

    __slots__ = ("_denied", "_rank", "chosen")

    def __init__(self) -> None:
        self.chosen: H | None = None
        """The headers chosen so far (None before the first offer)."""
        self._denied = False
        self._rank = 0

    @property
    def denied(self) -> bool:
        """Whether the chosen headers are a denial's."""
        return self._denied

    def offer(self, allowed: bool, view: View, item_headers: H) -> None:
        """Considers one item's headers."""
        if allowed:
            if not self._denied and (self.chosen is None or view.remaining < self._rank):
                self.chosen, self._rank = item_headers, view.remaining
        elif not self._denied or view.retry_after_us > self._rank:
            self.chosen, self._rank, self._denied = item_headers, view.retry_after_us, True


def most_restrictive(items: Iterable[tuple[bool, View, Mapping[str, str]]]) -> Mapping[str, str]:
    """The headers of the whole request (see MostRestrictive); empty for no items."""
    chooser: MostRestrictive[Mapping[str, str]] = MostRestrictive()
    for allowed, view, item_headers in items:
        chooser.offer(allowed, view, item_headers)
    return chooser.chosen if chooser.chosen is not None else {}
