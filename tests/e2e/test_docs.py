"""The README stays true: every setting its table lists exists, with the default it states."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from services.runtime.cli import toml_value
from services.runtime.config import SERVICE_NAMES, Settings

README = Path(__file__).resolve().parents[2] / "README.md"
ROW = re.compile(r"^\| `(?P<name>[a-z_<>.]+)` \| `(?P<default>[^`]*)` \|", re.MULTILINE)


def _documented_defaults() -> list[tuple[str, str]]:
    rows = [(match["name"], match["default"]) for match in ROW.finditer(README.read_text())]
    assert len(rows) >= 20, "the settings table of README.md was not found"
    return rows


def _default_of(path: str) -> object:
    value: object = json.loads(Settings().model_dump_json())
    for part in path.split("."):
        assert isinstance(value, dict), f"README lists {path!r}, which is not a setting"
        assert part in value, f"README lists {path!r}, which is not a setting"
        value = value[part]
    return value


@pytest.mark.parametrize(("name", "default"), _documented_defaults())
def test_readme_settings_table_matches_the_settings(name: str, default: str) -> None:
    paths = [name.replace("<svc>", service) for service in SERVICE_NAMES] if "<svc>" in name else [name]
    for path in paths:
        actual = _default_of(path)
        shown = actual if isinstance(actual, str) else toml_value(actual)
        assert shown == default, f"README says {path} = {default}, the default is {shown}"
