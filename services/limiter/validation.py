"""Checking what clients send: every bad field is reported (INVALID_ARGUMENT + BadRequest), nothing changes.

Proto messages in, plain values out: a limiter's column values with the seed's defaults (1000 per 60 s),
the items of a Check. The limits keep every scaled product within int64 (services.limiter.algorithms).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, NamedTuple

from google.protobuf import duration_pb2

from foundation.limiter.v1 import limiter_pb2
from services.limiter.algorithms import MAX_SCALED, Algorithm, FailureMode, LimiterConfig
from services.runtime.errors import FieldViolation, InvalidArgument

DEFAULT_LIMIT = 1000
DEFAULT_PERIOD_US = 60_000_000
DEFAULT_LEASE_TTL_US = 300_000_000
MIN_PERIOD_US = 1_000
MAX_PERIOD_US = 366 * 86_400_000_000
MAX_LEASE_TTL_US = 86_400_000_000
MAX_ITEMS = 1000
MAX_KEY_BYTES = 1024
MAX_DESCRIPTION = 1024
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 50

_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_ID_RULE = "1–63 of a-z, 0-9, '.', '_', '-', starting with a letter or digit"
UPDATABLE = ("algorithm", "limit", "period", "burst", "failure_mode", "shadow", "lease_ttl", "description")
"""Fields of Limiter that UpdateLimiter may change (the update mask's paths)."""


class Violations:
    """Collects field violations; `raise_if_any()` raises them all at once."""

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        """Records one bad field."""
        self.items.append(FieldViolation(field, description))

    def raise_if_any(self) -> None:
        """Raises InvalidArgument listing every recorded violation."""
        if self.items:
            raise InvalidArgument(self.items)


def limiter_id(name: str, field: str, v: Violations) -> str:
    """The id of `limiters/{id}`; a violation when `name` is not such a name."""
    prefix = "limiters/"
    if not name.startswith(prefix) or not _ID.fullmatch(name[len(prefix) :]):
        v.add(field, f"must be limiters/{{limiter_id}} with an id of {_ID_RULE}; got {name[:80]!r}")
        return ""
    return name[len(prefix) :]


def new_limiter_id(value: str, field: str, v: Violations) -> str:
    """A limiter_id for CreateLimiter."""
    if not _ID.fullmatch(value):
        v.add(field, f"must be {_ID_RULE}; got {value[:80]!r}")
    return value


def _micros(duration: duration_pb2.Duration, field: str, v: Violations) -> int | None:
    if duration.nanos % 1000:
        v.add(field, "must be a whole number of microseconds")
        return None
    return duration.seconds * 1_000_000 + duration.nanos // 1000


def limiter_values(limiter: limiter_pb2.Limiter, fields: Iterable[str], v: Violations) -> dict[str, Any]:
    """Column values of the given Limiter fields; unset ones get their defaults (limit 1000 per 60 s…)."""
    values: dict[str, Any] = {}
    for name in fields:
        field = f"limiter.{name}"
        if name == "algorithm":
            if limiter.algorithm not in Algorithm._value2member_map_ and limiter.algorithm != 0:
                v.add(field, f"unknown algorithm {limiter.algorithm}")
            values["algorithm"] = int(limiter.algorithm or Algorithm.GCRA)
        elif name == "limit":
            values["limit_count"] = limiter.limit if limiter.HasField("limit") else DEFAULT_LIMIT
            if values["limit_count"] < 1:
                v.add(field, "must be at least 1")
        elif name == "period":
            period = _micros(limiter.period, field, v) if limiter.HasField("period") else DEFAULT_PERIOD_US
            if period is not None and not MIN_PERIOD_US <= period <= MAX_PERIOD_US:
                v.add(field, "must be at least 1 ms and at most 366 days")
            values["period_us"] = period
        elif name == "burst":
            values["burst"] = limiter.burst if limiter.HasField("burst") else None
            if limiter.HasField("burst") and limiter.burst < 1:
                v.add(field, "must be at least 1")
        elif name == "failure_mode":
            if limiter.failure_mode not in FailureMode._value2member_map_ and limiter.failure_mode != 0:
                v.add(field, f"unknown failure mode {limiter.failure_mode}")
            values["failure_mode"] = int(limiter.failure_mode or FailureMode.FAIL_OPEN)
        elif name == "shadow":
            values["shadow"] = limiter.shadow
        elif name == "lease_ttl":
            ttl = _micros(limiter.lease_ttl, field, v) if limiter.HasField("lease_ttl") else None
            if ttl is not None and not MIN_PERIOD_US <= ttl <= MAX_LEASE_TTL_US:
                v.add(field, "must be at least 1 ms and at most 1 day")
            values["lease_ttl_us"] = ttl
        elif name == "description":
            if len(limiter.description) > MAX_DESCRIPTION:
                v.add(field, f"must be at most {MAX_DESCRIPTION} characters")
            elif "\x00" in limiter.description:
                v.add(field, "must not contain NUL (U+0000)")
            values["description"] = limiter.description
    return values


def complete(values: dict[str, Any]) -> dict[str, Any]:
    """Fills the dependent defaults of a full set of values: burst = limit, lease TTL 300 s."""
    if values.get("burst") is None:
        values["burst"] = values["limit_count"]
    if values.get("lease_ttl_us") is None:
        values["lease_ttl_us"] = DEFAULT_LEASE_TTL_US
    return values


def combination(config: LimiterConfig, v: Violations, *, burst_set: bool) -> None:
    """Rules between fields: burst is GCRA's; scaled products stay within int64."""
    if config.algorithm is not Algorithm.GCRA and burst_set and config.burst != config.limit:
        v.add("limiter.burst", "applies to GCRA only (other algorithms admit `limit` per period)")
    # Only the statements that multiply by the period need the bound: GCRA scales its bucket by it, the sliding
    # window weighs its counts by it; fixed windows and leases never form such a product.
    if config.algorithm is Algorithm.GCRA and config.burst * config.period_us > MAX_SCALED:
        v.add("limiter.burst", "burst × period (µs) must be at most 2^62")
    if config.algorithm is Algorithm.GCRA and config.limit > MAX_SCALED:
        # The refill is rounded up by adding `limit - 1` to the scaled bucket: both must fit in int64 together.
        v.add("limiter.limit", "must be at most 2^62 for GCRA")
    if config.algorithm is Algorithm.SLIDING_WINDOW and config.limit * config.period_us > MAX_SCALED:
        v.add("limiter.limit", "limit × period (µs) must be at most 2^62")


def update_fields(mask_paths: Iterable[str], v: Violations) -> list[str]:
    """The Limiter fields an update mask names; every writable field for an empty mask or `*`."""
    paths = [p for p in mask_paths]
    if not paths or paths == ["*"]:
        return list(UPDATABLE)
    fields: list[str] = []
    for path in paths:
        if path not in UPDATABLE:
            v.add("update_mask", f"unknown or read-only field {path!r}; writable: {', '.join(UPDATABLE)}")
        elif path not in fields:
            fields.append(path)
    return fields


class Item(NamedTuple):
    """A validated Check item."""

    limiter_id: str
    key: str
    cost: int


_KNOWN_NAMES: dict[str, str] = {}
"""Valid limiter names seen recently → their ids (a check names a few limiters many times over)."""


def check_items(request: limiter_pb2.CheckRequest) -> list[Item]:
    """The request's items, or INVALID_ARGUMENT naming every bad field."""
    items_in = request.items
    count = len(items_in)
    if not 1 <= count <= MAX_ITEMS or request.mode not in _MODES:
        return _check_items_slowly(request)
    items: list[Item] = []
    known = _KNOWN_NAMES
    for item in items_in:
        name, key = item.limiter, item.key
        lid = known.get(name)
        cost = item.cost if item.HasField("cost") else 1
        if lid is None or cost < 0 or not key or len(key) > _SURELY_SHORT_KEY or "\x00" in key:
            return _check_items_slowly(request)  # names every fault
        items.append(Item(lid, key, cost))
    return items


def _check_items_slowly(request: limiter_pb2.CheckRequest) -> list[Item]:
    v = Violations()
    count = len(request.items)
    if not 1 <= count <= MAX_ITEMS:
        v.add("items", f"must hold 1 to {MAX_ITEMS} items; got {count}")
    if request.mode not in _MODES:
        v.add("mode", f"unknown mode {request.mode}")
    items: list[Item] = []
    for i, item in enumerate(request.items[:MAX_ITEMS]):
        lid = limiter_id(item.limiter, f"items[{i}].limiter", v)
        if lid:
            if len(_KNOWN_NAMES) >= 10_000:
                _KNOWN_NAMES.clear()
            _KNOWN_NAMES[item.limiter] = lid
        key_check(item.key, f"items[{i}].key", v)
        cost = item.cost if item.HasField("cost") else 1
        if cost < 0:
            v.add(f"items[{i}].cost", "must not be negative (0 is a peek)")
        items.append(Item(lid, item.key, cost))
    v.raise_if_any()
    return items


_MODES = frozenset(limiter_pb2.CheckRequest.Mode.values())
_SURELY_SHORT_KEY = MAX_KEY_BYTES // 4
"""A key of at most this many characters is within MAX_KEY_BYTES whatever they are (UTF-8: ≤ 4 bytes each)."""


def key_check(key: str, field: str, v: Violations) -> None:
    """A key is 1 byte to 1 KiB of UTF-8, without NUL (PostgreSQL's text cannot hold U+0000)."""
    if not key:
        v.add(field, "must not be empty")
    elif "\x00" in key:
        v.add(field, "must not contain NUL (U+0000)")
    elif len(key) > _SURELY_SHORT_KEY and len(key.encode()) > MAX_KEY_BYTES:
        v.add(field, f"must be at most {MAX_KEY_BYTES} bytes of UTF-8")


def page(page_size: int, page_token: str, v: Violations) -> tuple[int, str]:
    """Page size (default 50, at most 1000) and the id to continue after."""
    if page_size < 0 or page_size > MAX_PAGE_SIZE:
        v.add("page_size", f"must be 0 (default {DEFAULT_PAGE_SIZE}) to {MAX_PAGE_SIZE}")
    after = ""
    if page_token:
        after = page_token.removeprefix("after:")
        if not page_token.startswith("after:") or not _ID.fullmatch(after):
            v.add("page_token", "is not a token from a previous ListLimiters response")
    return page_size or DEFAULT_PAGE_SIZE, after
