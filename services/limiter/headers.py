"""Ready-made HTTP headers of a decision (IETF draft-ietf-httpapi-ratelimit-headers, structured fields).

`RateLimit-Policy: "<limiter>";q=<limit>;w=<window s>` describes the quota, `RateLimit: "<limiter>";r=<remaining>
;t=<reset s>` the key's state, and `Retry-After: <s>` (RFC 9110, whole seconds, rounded up) comes with a denial.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

from services.limiter.algorithms import View, ceil_div

MICROS = 1_000_000


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


def most_restrictive(items: Sequence[tuple[bool, View, Mapping[str, str]]]) -> Mapping[str, str]:
    """The headers of the whole request: the denied item that waits longest, else the least remaining."""
    denied = [item for item in items if not item[0]]
    if denied:
        return max(denied, key=lambda item: item[1].retry_after_us)[2]
    return min(items, key=lambda item: item[1].remaining)[2] if items else {}
