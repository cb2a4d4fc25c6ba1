"""The ratelimit-format config loader: matching precedence and a one-line message for every fault."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.limiter.algorithms import Algorithm
from services.limiter.envoy_config import EnvoyConfigError, limiter_id_for, load
from services.limiter.validation import _ID

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
    assert config.match("d", [("k", "exact")]).requests_per_unit == 2  # type: ignore[union-attr]
    assert config.match("d", [("k", "prefix-x")]).requests_per_unit == 3  # type: ignore[union-attr]
    assert config.match("d", [("k", "other")]).requests_per_unit == 1  # type: ignore[union-attr]
    nested = config.match("d", [("parent", "p"), ("child", "c")])
    assert nested is not None
    assert nested.algorithm is Algorithm.SLIDING_WINDOW
    assert nested.path == "parent.child"
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
            "c.yaml: descriptors[1]: duplicate descriptor a=None",
        ),
        (
            "domain: d\ndescriptors:\n  - key: a\n    descriptors:\n      - key: b\n        colour: red\n",
            "c.yaml: descriptors[0].descriptors[0]: unknown key 'colour'",
        ),
        (
            "domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unit: second, requests_per_unit: 1, algorithm: magic}\n",
            "c.yaml: descriptors[0].rate_limit.algorithm: one of fixed_window",
        ),
        ("domain: [\n", "c.yaml: cannot read:"),
    ],
)
def test_faults_are_named_on_one_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(EnvoyConfigError) as raised:
        load(write(tmp_path, text, "c.yaml"))
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_duplicate_domains_and_missing_paths(tmp_path: Path) -> None:
    write(tmp_path, TREE, "a.yaml")
    write(tmp_path, TREE, "b.yaml")
    with pytest.raises(EnvoyConfigError, match=r"b\.yaml: domain: duplicate domain 'd'"):
        load(tmp_path)
    with pytest.raises(EnvoyConfigError, match="no such file"):
        load(tmp_path / "missing.yaml")


@given(domain=st.text(min_size=1, max_size=300), path=st.text(max_size=300))
def test_limiter_ids_are_always_valid_and_stable(domain: str, path: str) -> None:
    name = limiter_id_for(domain, path)
    assert _ID.fullmatch(name)
    assert name == limiter_id_for(domain, path)
