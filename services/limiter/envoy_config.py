"""envoyproxy/ratelimit's YAML configuration, read unchanged, and its descriptor matching.

A file (or every `*.yaml`/`*.yml` of a directory) holds one `domain` with nested `descriptors`: `key`, optional
`value` (a trailing `*` matches any value with that prefix), `rate_limit` {`unit`, `requests_per_unit`,
`unlimited`, `name`, `replaces`}, `shadow_mode`, `detailed_metric` (accepted, unused) and child `descriptors`.
One extension: `rate_limit.algorithm` (`fixed_window` — the default, as in envoyproxy/ratelimit —,
`sliding_window` or `gcra`).

Matching follows envoyproxy/ratelimit: walk the request descriptor's entries down the tree, preferring an exact
`key`+`value` node, then a wildcard value, then a `key`-only node; the limit applies only when the node holding
it matches the descriptor's last entry. Each configured limit is a limiter named
`envoy-<domain slug>-<10 hex of sha1(domain + path)>`; the counter key is the request's full descriptor
(`domain.key_value.key_value…`), so a `key`-only rule gives each distinct value its own quota, as ratelimit does.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from services.limiter.algorithms import Algorithm

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

ALGORITHMS = {
    "fixed_window": Algorithm.FIXED_WINDOW,
    "sliding_window": Algorithm.SLIDING_WINDOW,
    "gcra": Algorithm.GCRA,
}
_DESCRIPTOR_KEYS = {"key", "value", "rate_limit", "descriptors", "shadow_mode", "detailed_metric"}
_RATE_LIMIT_KEYS = {"unit", "requests_per_unit", "unlimited", "name", "replaces", "algorithm"}


class EnvoyConfigError(ValueError):
    """A problem in a ratelimit config file: `<file>: <path>: <problem>`."""


@dataclass(frozen=True)
class Rule:
    """One configured limit."""

    domain: str
    path: str
    """Where it sits, e.g. `remote_address` or `database_users.table`."""
    requests_per_unit: int
    unit: str
    unlimited: bool = False
    shadow: bool = False
    name: str = ""
    replaces: tuple[str, ...] = ()
    algorithm: Algorithm = Algorithm.FIXED_WINDOW

    @property
    def limiter_id(self) -> str:
        """The limiter that holds this rule's counters."""
        return limiter_id_for(self.domain, self.path)

    @property
    def period_us(self) -> int:
        """The window (or refill period) in microseconds."""
        return UNITS_US[self.unit]


@dataclass
class Node:
    """A level of the descriptor tree."""

    rule: Rule | None = None
    children: dict[tuple[str, str | None], Node] = field(default_factory=dict)
    """(key, value or None for key-only) → node; wildcard values keep their trailing `*`."""


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

    def match(self, domain: str, entries: Sequence[tuple[str, str]]) -> Rule | None:
        """The rule for one request descriptor (ratelimit's GetLimit), or None."""
        node = self.domains.get(domain)
        if node is None:
            return None
        rule = None
        for i, (key, value) in enumerate(entries):
            following = (
                node.children.get((key, value))
                or _wildcard(node, key, value)
                or node.children.get((key, None))
            )
            if following is None:
                break
            if following.rule is not None and i == len(entries) - 1:
                rule = following.rule
            if not following.children:
                break
            node = following
        return rule


def _wildcard(node: Node, key: str, value: str) -> Node | None:
    for (child_key, child_value), child in node.children.items():
        if (
            child_key == key
            and child_value
            and child_value.endswith("*")
            and value.startswith(child_value[:-1])
        ):
            return child
    return None


def limiter_id_for(domain: str, path: str) -> str:
    """`envoy-<slug>-<hash>`: a valid limiter id (≤ 63 characters), stable for a domain and path."""
    slug = re.sub(r"[^a-z0-9]+", "-", domain.lower()).strip("-")[:36] or "domain"
    digest = hashlib.sha1(f"{domain}\0{path}".encode()).hexdigest()[:10]
    return f"envoy-{slug}-{digest}"


def override_limiter_id(requests_per_unit: int, unit: str) -> str:
    """The limiter of a request's `limit` override (shared by every descriptor with the same override)."""
    return f"envoy-override-{unit}-{requests_per_unit}"


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
    except (OSError, yaml.YAMLError) as exc:
        raise EnvoyConfigError(f"{file.name}: cannot read: {str(exc).splitlines()[0]}") from None
    if not isinstance(document, dict):
        raise EnvoyConfigError(f"{file.name}: expected a mapping with `domain` and `descriptors`")
    unknown = set(document) - {"domain", "descriptors"}
    if unknown:
        raise EnvoyConfigError(f"{file.name}: unknown key {sorted(unknown)[0]!r}")
    domain = document.get("domain")
    if not isinstance(domain, str) or not domain:
        raise EnvoyConfigError(f"{file.name}: domain: must be a non-empty string")
    if domain in config.domains:
        raise EnvoyConfigError(f"{file.name}: domain: duplicate domain {domain!r}")
    node = Node()
    _load_descriptors(file.name, domain, "", document.get("descriptors") or [], node, "descriptors")
    config.domains[domain] = node


def _load_descriptors(file: str, domain: str, parent: str, items: Any, node: Node, where: str) -> None:
    if not isinstance(items, list):
        raise EnvoyConfigError(f"{file}: {where}: must be a list")
    for i, item in enumerate(items):
        here = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise EnvoyConfigError(f"{file}: {here}: must be a mapping")
        unknown = set(item) - _DESCRIPTOR_KEYS
        if unknown:
            raise EnvoyConfigError(f"{file}: {here}: unknown key {sorted(unknown)[0]!r}")
        key, value = item.get("key"), item.get("value")
        if not isinstance(key, str) or not key:
            raise EnvoyConfigError(f"{file}: {here}.key: must be a non-empty string")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise EnvoyConfigError(f"{file}: {here}.value: must be a string")
        value_text = None if value in (None, "") else str(value)
        slot = (key, value_text)
        if slot in node.children:
            raise EnvoyConfigError(f"{file}: {here}: duplicate descriptor {key}={value_text}")
        path = parent + key + ("" if value_text is None else f"_{value_text}")
        child = Node()
        if item.get("rate_limit") is not None:
            child.rule = _rule(file, domain, path, item, f"{here}.rate_limit")
        _load_descriptors(
            file, domain, path + ".", item.get("descriptors") or [], child, f"{here}.descriptors"
        )
        node.children[slot] = child


def _rule(file: str, domain: str, path: str, item: dict[str, Any], where: str) -> Rule:
    spec = item["rate_limit"]
    if not isinstance(spec, dict):
        raise EnvoyConfigError(f"{file}: {where}: must be a mapping")
    unknown = set(spec) - _RATE_LIMIT_KEYS
    if unknown:
        raise EnvoyConfigError(f"{file}: {where}: unknown key {sorted(unknown)[0]!r}")
    unlimited = bool(spec.get("unlimited", False))
    unit = str(spec.get("unit", "")).lower()
    if unlimited and unit:
        raise EnvoyConfigError(f"{file}: {where}.unit: must not be given with unlimited")
    if not unlimited and unit not in UNITS_US:
        raise EnvoyConfigError(
            f"{file}: {where}.unit: unknown unit {spec.get('unit')!r}; one of {', '.join(UNITS_US)}"
        )
    rpu = spec.get("requests_per_unit", 0)
    if not isinstance(rpu, int) or isinstance(rpu, bool) or not 0 <= rpu < 2**32:
        raise EnvoyConfigError(f"{file}: {where}.requests_per_unit: must be an integer from 0 to 2^32-1")
    algorithm = str(spec.get("algorithm", "fixed_window")).lower()
    if algorithm not in ALGORITHMS:
        raise EnvoyConfigError(f"{file}: {where}.algorithm: one of {', '.join(ALGORITHMS)}")
    replaces = spec.get("replaces") or []
    names = tuple(str(r.get("name", "")) if isinstance(r, dict) else "" for r in _as_list(replaces))
    if any(not n for n in names):
        raise EnvoyConfigError(f"{file}: {where}.replaces: each entry needs a name")
    name = str(spec.get("name", ""))
    if name and name in names:
        raise EnvoyConfigError(f"{file}: {where}.replaces: must not name its own descriptor")
    return Rule(
        domain=domain,
        path=path,
        requests_per_unit=rpu,
        unit=unit or "second",
        unlimited=unlimited,
        shadow=bool(item.get("shadow_mode", False)),
        name=name,
        replaces=names,
        algorithm=ALGORITHMS[algorithm],
    )


def _as_list(value: Any) -> Iterable[Any]:
    return value if isinstance(value, list) else [value]
