"""The ratelimit-format config loader: matching precedence and a one-line message for every fault."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.limiter.algorithms import Algorithm
from services.limiter.envoy_config import (
    ALGORITHMS,
    UNITS_US,
    EnvoyConfigError,
    counter_key,
    limiter_id_for,
    load,
    max_requests,
    wildcard_match,
)
from services.limiter.validation import _ID, MAX_KEY_BYTES

TREE = """
domain: d
descriptors:
  - key: k
    rate_limit: {unit: second, requests_per_unit: 1}
  - key: k
    value: exact
    rate_limit: {unit: minute, requests_per_unit: 2}
  - key: k
    value: pre*
    rate_limit: {unit: hour, requests_per_unit: 3}
  - key: parent
    descriptors:
      - key: child
        rate_limit: {unit: day, requests_per_unit: 4, algorithm: sliding_window}
"""


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_matching_prefers_exact_then_wildcard_then_key_only(tmp_path: Path) -> None:
    config = load(write(tmp_path, TREE))

    def limit(*entries: tuple[str, str]) -> int | None:
        found = config.match("d", entries)
        return None if found is None else found.rule.requests_per_unit

    assert limit(("k", "exact")) == 2
    assert limit(("k", "prefix-x")) == 3
    assert limit(("k", "pre*")) == 3  # the pattern itself, matched exactly
    assert limit(("k", "other")) == 1
    nested = config.match("d", [("parent", "p"), ("child", "c")])
    assert nested is not None
    assert nested.rule.algorithm is Algorithm.SLIDING_WINDOW
    assert nested.rule.path == "parent.child"
    assert nested.shared == {}
    assert config.match("d", [("parent", "p")]) is None  # no limit at that level
    assert config.match("d", [("k", "exact"), ("more", "x")]) is None  # request deeper than the config
    assert config.match("unknown", [("k", "exact")]) is None
    assert len(config.rules()) == 4


def test_a_directory_loads_every_yaml_file(tmp_path: Path) -> None:
    write(tmp_path, TREE, "a.yaml")
    write(tmp_path, "domain: e\ndescriptors: []\n", "b.yml")
    write(tmp_path, "not yaml at all: [", "ignored.txt")
    assert set(load(tmp_path).domains) == {"d", "e"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("descriptors: []\n", "c.yaml: domain: must be a non-empty string"),
        ("domain: d\nextra: 1\n", "c.yaml: unknown key 'extra'"),
        ("domain: d\ndescriptors:\n  - value: v\n", "c.yaml: descriptors[0].key: must be a non-empty string"),
        (
            "domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unit: fortnight, requests_per_unit: 1}\n",
            "c.yaml: descriptors[0].rate_limit.unit: unknown unit 'fortnight'",
        ),
        (
            "domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unit: second, requests_per_unit: -1}\n",
            "c.yaml: descriptors[0].rate_limit.requests_per_unit: must be an integer",
        ),
        (
            "domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unlimited: true, unit: second}\n",
            "c.yaml: descriptors[0].rate_limit.unit: must not be given with unlimited",
        ),
        (
            "domain: d\ndescriptors:\n  - key: a\n  - key: a\n",
            "c.yaml: descriptors[1]: duplicate descriptor 'a'",
        ),
        (
            "domain: d\ndescriptors:\n  - key: a_b\n  - key: a\n    value: b\n",
            "c.yaml: descriptors[1]: duplicate descriptor 'a_b'",  # one name to ratelimit, too
        ),
        (
            "domain: d\ndescriptors:\n  - key: a\n    value: v\n    share_threshold: true\n",
            "c.yaml: descriptors[0].share_threshold: needs a wildcard value",
        ),
        (
            "domain: d\ndescriptors:\n  - key: a\n    shadow_mode: 'yes'\n",
            "c.yaml: descriptors[0].shadow_mode: must be true or false",
        ),
        (
            "domain: d\ndescriptors:\n  - key: a\n    metadata: [1]\n",
            "c.yaml: descriptors[0].metadata: must be a mapping",
        ),
        (
            "domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unit: second, replaces: [{}]}\n",
            "c.yaml: descriptors[0].rate_limit.replaces: each entry needs a name",
        ),
        (
            "domain: d\ndescriptors:\n  - key: a\n    descriptors:\n      - key: b\n        colour: red\n",
            "c.yaml: descriptors[0].descriptors[0]: unknown key 'colour'",
        ),
        (
            "domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unit: second, requests_per_unit: 1, algorithm: magic}\n",
            "c.yaml: descriptors[0].rate_limit.algorithm: one of fixed_window",
        ),
        (
            "domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unit: month, requests_per_unit: 10000000, "
            "algorithm: sliding_window}\n",
            "c.yaml: descriptors[0].rate_limit.requests_per_unit: at most 1779199 per month for sliding_window",
        ),
        ("domain: [\n", "c.yaml: cannot read:"),
    ],
)
def test_faults_are_named_on_one_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(EnvoyConfigError) as raised:
        load(write(tmp_path, text, "c.yaml"))
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_the_largest_limit_of_each_unit_and_algorithm_loads(tmp_path: Path) -> None:
    lines = [
        f"  - key: {unit}-{name}\n    rate_limit: {{unit: {unit}, algorithm: {name}, "
        f"requests_per_unit: {max_requests(unit, algorithm)}}}"
        for unit in UNITS_US
        for name, algorithm in ALGORITHMS.items()
    ]
    config = load(write(tmp_path, "domain: d\ndescriptors:\n" + "\n".join(lines) + "\n"))
    for rule in config.rules():
        if rule.algorithm is Algorithm.FIXED_WINDOW:
            assert rule.requests_per_unit == 2**32 - 1  # a fixed window never multiplies by the period
        else:
            assert rule.requests_per_unit * rule.period_us <= 2**62
            assert (
                rule.requests_per_unit == 2**32 - 1 or (rule.requests_per_unit + 1) * rule.period_us > 2**62
            )


def test_duplicate_domains_and_missing_paths(tmp_path: Path) -> None:
    write(tmp_path, TREE, "a.yaml")
    write(tmp_path, TREE, "b.yaml")
    with pytest.raises(EnvoyConfigError, match=r"b\.yaml: domain: duplicate domain 'd'"):
        load(tmp_path)
    with pytest.raises(EnvoyConfigError, match="no such file"):
        load(tmp_path / "missing.yaml")


def test_every_key_of_ratelimit_files_is_accepted(tmp_path: Path) -> None:
    config = load(
        write(
            tmp_path,
            """
domain: full
descriptors:
  - key: k
    value: "a*b*c"
    shadow_mode: false
    quota_mode: true
    detailed_metric: true
    value_to_metric: true
    share_threshold: true
    metadata: {owner: team, tags: [x, y]}
    rate_limit:
      name: n
      replaces: [{name: other}]
      unit: MINUTE
      requests_per_unit: 7
  - key: flag
    value: true
    rate_limit: {unlimited: true}
""",
        )
    )
    rule = config.match("full", [("k", "a-b-b-c")])
    assert rule is not None
    assert (rule.rule.quota, rule.rule.unit, rule.rule.replaces, rule.shared) == (
        True,
        "minute",
        ("other",),
        {0: "a*b*c"},
    )
    assert config.match("full", [("k", "a-c-b")]) is None
    assert config.match("full", [("flag", "true")]) is not None  # YAML's true read as ratelimit does


PATTERN_TEXT = st.text(alphabet="ab*", max_size=8)


@given(pattern=PATTERN_TEXT, value=st.text(alphabet="ab", max_size=8))
def test_wildcards_match_like_a_glob_of_stars(pattern: str, value: str) -> None:
    reference = re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), value, re.DOTALL) is not None
    assert wildcard_match(tuple(pattern.split("*")), value) is reference


ENTRIES = st.lists(st.tuples(st.text(max_size=6), st.text(max_size=6)), min_size=1, max_size=4)


@given(domain=st.text(max_size=6), a=ENTRIES, b=ENTRIES)
def test_counter_keys_never_merge_two_descriptors(
    domain: str, a: list[tuple[str, str]], b: list[tuple[str, str]]
) -> None:
    same = counter_key(domain, a, {}) == counter_key(domain, b, {})
    assert same is (a == b)
    assert (counter_key(domain, a, {}) == counter_key(domain + "x", a, {})) is False


@given(domain=st.text(min_size=1, max_size=50), entries=ENTRIES, long=st.text(min_size=600, max_size=900))
def test_counter_keys_fit_the_store(domain: str, entries: list[tuple[str, str]], long: str) -> None:
    for candidate in (entries, [*entries, ("big", long)]):
        key = counter_key(domain, candidate, {})
        assert len(key.encode()) <= MAX_KEY_BYTES
        assert "\x00" not in key
    assert counter_key(domain, [("k", "a*")], {}) != counter_key(domain, [("k", "x")], {0: "a*"})


@given(
    domain=st.text(min_size=1, max_size=300),
    entries=st.lists(st.tuples(st.text(max_size=50), st.none() | st.text(max_size=50)), max_size=4),
)
def test_limiter_ids_are_always_valid_and_stable(domain: str, entries: list[tuple[str, str | None]]) -> None:
    name = limiter_id_for(domain, entries)
    assert _ID.fullmatch(name)
    assert name == limiter_id_for(domain, list(entries))
    assert name != limiter_id_for(domain, [*entries, ("more", None)])
