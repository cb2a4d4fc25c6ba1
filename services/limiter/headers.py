"""Ready-made HTTP headers of a decision (IETF draft-ietf-httpapi-ratelimit-headers, structured fields).

`RateLimit-Policy: "<limiter>";q=<limit>;w=<window s>` describes the quota, `RateLimit: "<limiter>";r=<remaining>
;t=<reset s>` the key's state, and `Retry-After: <s>` (RFC 9110, whole seconds, rounded up) comes with a denial.
"""

from __future__ import annotations

from services.limiter.algorithms import View, ceil_div

MICROS = 1_000_000


def seconds_up(micros: int) -> int:
    """Whole seconds, rounded up (a client waiting that long is never early)."""
    return ceil_div(max(0, micros), MICROS)


def for_item(limiter_id: str, period_us: int, view: View, allowed: bool) -> dict[str, str]:
    """The headers of one decided item."""
    headers = {
        "RateLimit-Policy": f'"{limiter_id}";q={view.limit};w={max(1, seconds_up(period_us))}',
        "RateLimit": f'"{limiter_id}";r={view.remaining};t={seconds_up(view.reset_after_us)}',
    }
    if not allowed:
        headers["Retry-After"] = str(max(1, seconds_up(view.retry_after_us)))
    return headers


def most_restrictive(items: list[tuple[bool, View, dict[str, str]]]) -> dict[str, str]:
    """The headers of the whole request: the denied item that waits longest, else the least remaining."""
    denied = [item for item in items if not item[0]]
    if denied:
        return max(denied, key=lambda item: item[1].retry_after_us)[2]
    return min(items, key=lambda item: item[1].remaining)[2] if items else {}
