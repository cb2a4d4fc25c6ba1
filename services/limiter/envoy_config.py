"""envoyproxy/ratelimit's YAML configuration, read unchanged, its descriptor matching, and the naming rule.

A file (or every `*.yaml`/`*.yml` of a directory) holds one `domain` with nested `descriptors`: `key`, optional
`value` (`*` in it matches any run of characters), `rate_limit` {`unit`, `requests_per_unit`, `unlimited`,
`name`, `replaces`}, `shadow_mode`, `quota_mode`, `share_threshold`, child `descriptors`, and the metrics-only
`detailed_metric`, `value_to_metric`, `metadata` (accepted, unused). One extension: `rate_limit.algorithm`
(`fixed_window` — the default, as in envoyproxy/ratelimit —, `sliding_window` or `gcra`).

Matching follows envoyproxy/ratelimit's GetLimit: walk the request descriptor's entries down the tree, preferring
an exact `key`+`value` node, then a wildcard value (in file order), then a `key`-only node; the limit applies
only when the node holding it matches the descriptor's last entry. Each configured limit is a limiter named
`envoy-<domain slug>-<10 hex of sha1 of (domain, entries)>`; the counter key is the request's whole descriptor
(`domain:key=value,key=value…`, escaped so that different descriptors never share a key), so a `key`-only rule
gives each distinct value its own quota, as ratelimit does; `share_threshold` makes all values matching a
wildcard share one.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from services.limiter.algorithms import MAX_SCALED, Algorithm
from services.limiter.validation import MAX_KEY_BYTES

UNITS_US: dict[str, int] = {
    "second": 1_000_000,
    "minute": 60_000_000,
    "hour": 3_600_000_000,
    "day": 86_400_000_000,
    "week": 7 * 86_400_000_000,
    "month": 30 * 86_400_000_000,
    "year": 365 * 86_400_000_000,
}
"""Envoy's RateLimitResponse.RateLimit.Unit names → window length (a month is 30 days, a year 365)."""


def max_requests(unit: str, algorithm: Algorithm = Algorithm.FIXED_WINDOW) -> int:
    """The largest requests_per_unit a limiter of `algorithm` holds for `unit`.

    Fixed windows take any uint32; GCRA and the sliding window scale by the period, so limit × period (µs)
    must stay within 2^62 (services.limiter.validation).
    """
    if algorithm is Algorithm.FIXED_WINDOW:
        return 2**32 - 1
    return min(2**32 - 1, MAX_SCALED // UNITS_US[unit])


ALGORITHMS = {
    "fixed_window": Algorithm.FIXED_WINDOW,
    "sliding_window": Algorithm.SLIDING_WINDOW,
    "gcra": Algorithm.GCRA,
}
_FLAGS = ("shadow_mode", "quota_mode", "share_threshold", "detailed_metric", "value_to_metric")
_DESCRIPTOR_KEYS = {"key", "value", "rate_limit", "descriptors", "metadata", *_FLAGS}
_RATE_LIMIT_KEYS = {"unit", "requests_per_unit", "unlimited", "name", "replaces", "algorithm"}
_ESCAPED = re.compile(r"[%:,=#*\x00]")
"""Separators of the counter key (and `*`, so a literal value never equals a shared wildcard pattern)."""


class EnvoyConfigError(ValueError):
    """A problem in a ratelimit config file: `<file>: <path>: <problem>`."""


@dataclass(frozen=True)
class Rule:
    """One configured limit."""

    domain: str
    path: str
    """Where it sits, as ratelimit names it in stats, e.g. `remote_address` or `database_users.table`."""
    requests_per_unit: int
    unit: str
    unlimited: bool = False
    shadow: bool = False
    quota: bool = False
    """ratelimit's quota_mode: over this limit blocks the request only if every quota descriptor is over."""
    name: str = ""
    replaces: tuple[str, ...] = ()
    algorithm: Algorithm = Algorithm.FIXED_WINDOW
    entries: tuple[tuple[str, str | None], ...] = ()
    """The configured (key, value or None) of each level: the limiter's identity."""

    @property
    def limiter_id(self) -> str:
        """The limiter that holds this rule's counters."""
        return limiter_id_for(self.domain, self.entries)

    @property
    def period_us(self) -> int:
        """The window (or refill period) in microseconds."""
        return UNITS_US[self.unit]


@dataclass(frozen=True)
class Wildcard:
    """A child whose value holds `*`, kept in file order (ratelimit tries them in that order)."""

    key: str
    pattern: str
    parts: tuple[str, ...]
    node: Node


@dataclass
class Node:
    """A level of the descriptor tree."""

    rule: Rule | None = None
    share_threshold: bool = False
    children: dict[tuple[str, str | None], Node] = field(default_factory=dict)
    """(key, value or None for key-only) → node, wildcard values included (an exact request value hits them)."""
    wildcards: list[Wildcard] = field(default_factory=list)


@dataclass(frozen=True)
class Match:
    """A request descriptor's rule, and the wildcard patterns that stand for values in its counter key."""

    rule: Rule
    shared: Mapping[int, str]
    """Entry index → the `share_threshold` wildcard pattern counted instead of the entry's value."""


@dataclass
class EnvoyConfig:
    """Every domain's descriptor tree."""

    domains: dict[str, Node] = field(default_factory=dict)

    def rules(self) -> list[Rule]:
        """Every configured limit, in a stable order."""
        found: list[Rule] = []

        def walk(node: Node) -> None:
            if node.rule is not None:
                found.append(node.rule)
            for child in node.children.values():
                walk(child)

        for domain in sorted(self.domains):
            walk(self.domains[domain])
        return found

    def match(self, domain: str, entries: Sequence[tuple[str, str]]) -> Match | None:
        """The rule for one request descriptor (ratelimit's GetLimit), or None."""
        node = self.domains.get(domain)
        if node is None:
            return None
        shared: dict[int, str] = {}
        found = None
        for i, (key, value) in enumerate(entries):
            following = node.children.get((key, value))
            if following is None:
                wildcard = _wildcard(node, key, value)
                if wildcard is not None:
                    following = wildcard.node
                    if following.share_threshold:
                        shared[i] = wildcard.pattern
            if following is None:
                following = node.children.get((key, None))
            if following is None:
                break
            if following.rule is not None and i == len(entries) - 1:
                found = following.rule
            if not following.children:
                break
            node = following
        return None if found is None else Match(found, shared)


def _wildcard(node: Node, key: str, value: str) -> Wildcard | None:
    for wildcard in node.wildcards:
        if wildcard.key == key and wildcard_match(wildcard.parts, value):
            return wildcard
    return None


def wildcard_match(parts: Sequence[str], value: str) -> bool:
    """Whether `value` matches a pattern split on `*` (each `*` matches any run of characters, even none)."""
    if len(parts) == 1:
        return parts[0] == value
    first, *middle, last = parts
    if len(value) < sum(map(len, parts)) or not value.startswith(first) or not value.endswith(last):
        return False
    position, end = len(first), len(value) - len(last)
    for part in middle:
        found = value.find(part, position, end)
        if found < 0:
            return False
        position = found + len(part)
    return True


def limiter_id_for(domain: str, entries: Iterable[tuple[str, str | None]]) -> str:
    """`envoy-<slug>-<hash>`: a valid limiter id (≤ 63 characters), stable for a domain and rule position."""
    slug = re.sub(r"[^a-z0-9]+", "-", domain.lower()).strip("-")[:36] or "domain"
    identity = json.dumps([domain, [list(entry) for entry in entries]], ensure_ascii=False)
    digest = hashlib.sha1(identity.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"envoy-{slug}-{digest}"


def override_limiter_id(requests_per_unit: int, unit: str) -> str:
    """The limiter of a request's `limit` override (shared by every descriptor with the same override)."""
    return f"envoy-override-{unit}-{requests_per_unit}"


def counter_key(domain: str, entries: Sequence[tuple[str, str]], shared: Mapping[int, str]) -> str:
    """`domain:key=value,key=value…` with separators escaped (`%XX`); a `share_threshold` entry counts as its
    pattern (its `*` unescaped). Keys past the store's 1 KiB keep a prefix and gain a SHA-256 after `#`."""
    values = [
        f"{_escape(k)}={_escape(shared[i], keep='*') if i in shared else _escape(v)}"
        for i, (k, v) in enumerate(entries)
    ]
    key = _escape(domain) + ":" + ",".join(values)
    raw = key.encode()
    if len(raw) > MAX_KEY_BYTES:
        key = key[:200] + "#" + hashlib.sha256(raw).hexdigest()
    return key


def _escape(text: str, keep: str = "") -> str:
    return _ESCAPED.sub(lambda m: m.group() if m.group() in keep else f"%{ord(m.group()):02X}", text)


def load(path: str | Path) -> EnvoyConfig:
    """Reads a config file or a directory of them; EnvoyConfigError names the file, the place and the fault."""
    root = Path(path)
    if root.is_dir():
        files = sorted(p for p in root.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        if not files:
            raise EnvoyConfigError(f"{root}: no .yaml or .yml files")
    elif root.is_file():
        files = [root]
    else:
        raise EnvoyConfigError(f"{root}: no such file or directory")
    config = EnvoyConfig()
    for file in files:
        _load_file(config, file)
    return config


def _load_file(config: EnvoyConfig, file: Path) -> None:
    try:
        document = yaml.safe_load(file.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise EnvoyConfigError(f"{file.name}: cannot read: {first}") from None
    if not isinstance(document, dict):
        raise EnvoyConfigError(f"{file.name}: expected a mapping with `domain` and `descriptors`")
    unknown = set(document) - {"domain", "descriptors"}
    if unknown:
        raise EnvoyConfigError(f"{file.name}: unknown key {sorted(map(str, unknown))[0]!r}")
    domain = document.get("domain")
    if not isinstance(domain, str) or not domain:
        raise EnvoyConfigError(f"{file.name}: domain: must be a non-empty string")
    if domain in config.domains:
        raise EnvoyConfigError(f"{file.name}: domain: duplicate domain {domain!r}")
    node = Node()
    _Loader(file.name, domain).descriptors(document.get("descriptors") or [], node, (), "descriptors")
    config.domains[domain] = node


@dataclass
class _Loader:
    file: str
    domain: str

    def fail(self, where: str, problem: str) -> EnvoyConfigError:
        return EnvoyConfigError(f"{self.file}: {where}: {problem}")

    def descriptors(
        self, items: Any, node: Node, parent: tuple[tuple[str, str | None], ...], where: str
    ) -> None:
        if not isinstance(items, list):
            raise self.fail(where, "must be a list")
        composite: set[str] = set()
        for i, item in enumerate(items):
            here = f"{where}[{i}]"
            if not isinstance(item, dict):
                raise self.fail(here, "must be a mapping")
            unknown = set(item) - _DESCRIPTOR_KEYS
            if unknown:
                raise self.fail(here, f"unknown key {sorted(map(str, unknown))[0]!r}")
            key = self.scalar(item.get("key"), f"{here}.key")
            if not key:
                raise self.fail(f"{here}.key", "must be a non-empty string")
            value = self.scalar(item.get("value"), f"{here}.value") or None
            # ratelimit keys a level by `key` or `key_value`; two descriptors with one such name clash there.
            name = key if value is None else f"{key}_{value}"
            if name in composite:
                raise self.fail(here, f"duplicate descriptor {name!r}")
            composite.add(name)
            flags = {flag: self.flag(item, flag, here) for flag in _FLAGS}
            if flags["share_threshold"] and "*" not in (value or ""):
                raise self.fail(f"{here}.share_threshold", "needs a wildcard value (containing '*')")
            if not isinstance(item.get("metadata") or {}, dict):
                raise self.fail(f"{here}.metadata", "must be a mapping")
            entries = (*parent, (key, value))
            child = Node(share_threshold=flags["share_threshold"])
            if item.get("rate_limit") is not None:
                child.rule = self.rule(item["rate_limit"], entries, flags, f"{here}.rate_limit")
            self.descriptors(item.get("descriptors") or [], child, entries, f"{here}.descriptors")
            node.children[(key, value)] = child
            if value is not None and "*" in value:
                node.wildcards.append(Wildcard(key, value, tuple(value.split("*")), child))

    def rule(
        self,
        spec: Any,
        entries: tuple[tuple[str, str | None], ...],
        flags: Mapping[str, bool],
        where: str,
    ) -> Rule:
        if not isinstance(spec, dict):
            raise self.fail(where, "must be a mapping")
        unknown = set(spec) - _RATE_LIMIT_KEYS
        if unknown:
            raise self.fail(where, f"unknown key {sorted(map(str, unknown))[0]!r}")
        unlimited = self.flag(spec, "unlimited", where)
        unit = str(spec.get("unit") or "").lower()
        if unlimited and unit:
            raise self.fail(f"{where}.unit", "must not be given with unlimited")
        if not unlimited and unit not in UNITS_US:
            raise self.fail(
                f"{where}.unit", f"unknown unit {spec.get('unit')!r}; one of {', '.join(UNITS_US)}"
            )
        rpu = spec.get("requests_per_unit", 0)
        if not isinstance(rpu, int) or isinstance(rpu, bool) or not 0 <= rpu < 2**32:
            raise self.fail(f"{where}.requests_per_unit", "must be an integer from 0 to 2^32-1")
        algorithm = str(spec.get("algorithm", "fixed_window")).lower()
        if algorithm not in ALGORITHMS:
            raise self.fail(f"{where}.algorithm", f"one of {', '.join(ALGORITHMS)}")
        ceiling = max_requests(unit, ALGORITHMS[algorithm]) if not unlimited else 0
        if not unlimited and rpu > ceiling:
            raise self.fail(
                f"{where}.requests_per_unit",
                f"at most {ceiling} per {unit} for {algorithm} (limit × period in µs at most 2^62)",
            )
        replaces = spec.get("replaces") or []
        names = tuple(str(r.get("name") or "") if isinstance(r, dict) else "" for r in _as_list(replaces))
        if any(not n for n in names):
            raise self.fail(f"{where}.replaces", "each entry needs a name")
        name = self.scalar(spec.get("name"), f"{where}.name")
        if name and name in names:
            raise self.fail(f"{where}.replaces", "must not name its own descriptor")
        return Rule(
            domain=self.domain,
            path=".".join(k if v is None else f"{k}_{v}" for k, v in entries),
            requests_per_unit=rpu,
            unit=unit or "second",
            unlimited=unlimited,
            shadow=flags["shadow_mode"],
            quota=flags["quota_mode"],
            name=name,
            replaces=names,
            algorithm=ALGORITHMS[algorithm],
            entries=entries,
        )

    def scalar(self, value: Any, where: str) -> str:
        """A YAML scalar as ratelimit's Go decoder reads it into a string (`true`, `42`); None → ''."""
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str | int | float):
            return str(value)
        raise self.fail(where, "must be a string")

    def flag(self, item: Mapping[str, Any], name: str, where: str) -> bool:
        value = item.get(name, False)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self.fail(f"{where}.{name}", "must be true or false")
        return value


def _as_list(value: Any) -> Iterable[Any]:
    return value if isinstance(value, list) else [value]
