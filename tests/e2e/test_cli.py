"""The `foundation` command's bad-input and fault paths: one `error:` line, a non-zero exit, no traceback."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from services.runtime.cli import main
from services.runtime.config import load_settings
from tests.e2e.processes import clean_environment, error_lines, run_to_end, write_config


@contextlib.contextmanager
def foundation_env(env: dict[str, str] | None) -> Iterator[None]:
    """Exactly `env` as this process's FOUNDATION_* environment for the duration."""
    saved = {key: value for key, value in os.environ.items() if key.startswith("FOUNDATION_")}
    for key in saved:
        del os.environ[key]
    os.environ.update(env or {})
    try:
        yield
    finally:
        for key in [key for key in os.environ if key.startswith("FOUNDATION_")]:
            del os.environ[key]
        os.environ.update(saved)


def run_in_process(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """`foundation <args>` in this process (fast, for property tests): exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with foundation_env(env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


def assert_one_error_line(code: int, err: str, *needles: str) -> str:
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, err)
    return lines[0]


def _is_valid_port(text: str) -> bool:
    """Whether the CLI (typer, then pydantic: both lax, e.g. "1.0" is 1) takes `text` as a port."""
    try:
        return 0 <= TypeAdapter(int).validate_python(text) <= 65535
    except ValidationError:
        return False


UNREACHABLE_DB = {"FOUNDATION_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none"}
"""So that a value wrongly taken for valid fails fast instead of serving (or migrating a real file)."""


@given(port=st.one_of(st.integers().map(str), st.text(max_size=12)))
@settings(max_examples=60, deadline=None)
def test_serve_rejects_any_bad_port_with_one_line(port: str) -> None:
    assume(not _is_valid_port(port))
    code, _, err = run_in_process(["serve", "limiter", f"--port={port}"], UNREACHABLE_DB)
    assert code == 2, err
    line = assert_one_error_line(code, err)
    assert "port" in line


@given(
    service=st.sampled_from(["signals", "limiter", "cache", "pool", "gateway"]),
    value=st.one_of(st.integers(max_value=-1), st.integers(min_value=65536), st.text(max_size=10)),
)
@settings(max_examples=60, deadline=None)
def test_a_bad_env_var_is_named_before_anything_runs(service: str, value: int | str) -> None:
    assume(not _is_valid_port(str(value)) and "\x00" not in str(value))
    assume(str(value).encode("utf-8", errors="ignore").decode() == str(value))
    env = {**UNREACHABLE_DB, f"FOUNDATION_{service.upper()}__PORT": str(value)}
    code, out, err = run_in_process(["migrate"], env)
    assert code == 2, err
    assert_one_error_line(code, err, f"{service}.port")
    assert out == ""


@given(target=st.text(min_size=1, max_size=20).filter(lambda text: ":" not in text))
@settings(max_examples=40, deadline=None)
def test_health_rejects_targets_that_are_neither_service_nor_address(target: str) -> None:
    assume(target not in ("signals", "limiter", "cache", "pool", "gateway") and not target.startswith("-"))
    code, _, err = run_in_process(["health", target])
    assert code == 2
    assert_one_error_line(code, err, "neither a service")


def test_unknown_service_and_unknown_command_are_one_line() -> None:
    code, _, err = run_in_process(["serve", "nope"])
    assert_one_error_line(code, err, "unknown service 'nope'", "limiter")
    code, _, err = run_in_process(["run", "--only", "limiter,nope"])
    assert_one_error_line(code, err, "unknown service 'nope'")
    code, _, err = run_in_process(["frobnicate"])
    assert_one_error_line(code, err, "frobnicate")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("[limiter]\nport = 70000\n", "limiter.port"),
        ("[cache]\nsize = 3\n", "cache.size: unknown setting"),
        ("shutdown_grace_s = -1\n", "shutdown_grace_s"),
        ('database_url = "mysql://x"\n', "database_url"),
        ("[limiter\nport = 1\n", "config file"),
    ],
)
def test_a_bad_config_file_is_one_line_naming_the_field(tmp_path: Path, content: str, needle: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(content)
    code, out, err = run_in_process(["--config", str(config), "run"])
    assert code == 2
    assert_one_error_line(code, err, needle)
    assert out == ""


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    code, _, err = run_in_process(["health"], {"FOUNDATION_CONFIG": str(tmp_path / "missing.toml")})
    assert_one_error_line(code, err, "missing.toml", "not found")


def test_bad_config_as_a_real_process(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[limiter]\nport = 70000\n")
    proc = run_to_end(["--config", str(config), "run"], tmp_path, clean_environment())
    assert proc.popen.returncode == 2
    assert error_lines(proc.stderr()) == [proc.stderr().strip()]
    assert "limiter.port" in proc.stderr()


def test_migrate_prints_the_revision_and_is_idempotent(tmp_path: Path) -> None:
    # A real process: migrating configures logging, which must not leak into this test process.
    url = f"sqlite:///{tmp_path / 'sub' / 'f.db'}"
    env = clean_environment(FOUNDATION_DATABASE_URL=url)
    first, second = (run_to_end(["migrate"], tmp_path, env, name=f"migrate{i}") for i in range(2))
    assert first.popen.returncode == 0, first.describe()
    assert first.stdout().startswith(f"{url} at revision "), first.describe()
    assert first.stdout() == second.stdout()
    assert first.stdout().split()[-1] != "base"


@pytest.mark.parametrize("command", [["migrate"], ["run"], ["serve", "limiter", "--port", "0"]])
def test_an_unreachable_database_is_one_clear_line(tmp_path: Path, command: list[str]) -> None:
    env = clean_environment(FOUNDATION_DATABASE_URL="postgresql://postgres:hunter2@127.0.0.1:1/foundation")
    proc = run_to_end(command, tmp_path, env)
    assert proc.popen.returncode not in (0, None), proc.describe()
    err = proc.stderr()
    assert "Traceback" not in err, err
    assert "hunter2" not in err, err
    errors = error_lines(err)
    assert len(errors) == 1, err
    assert "127.0.0.1" in errors[0], errors


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("service", ["limiter", "gateway"])
def test_serve_on_a_port_in_use_names_the_port(tmp_path: Path, taken_port: int, service: str) -> None:
    config = write_config(tmp_path / "f.toml", f"sqlite:///{tmp_path / 'f.db'}")
    proc = run_to_end(
        ["--config", str(config), "serve", service, "--port", str(taken_port)], tmp_path, clean_environment()
    )
    assert proc.popen.returncode not in (0, None), proc.describe()
    err = proc.stderr()
    assert "Traceback" not in err, err
    errors = error_lines(err)
    assert len(errors) == 1, err
    assert str(taken_port) in errors[0], errors


@given(
    port=st.integers(min_value=0, max_value=65535),
    hosts=st.lists(st.text(min_size=1, max_size=12).filter(lambda t: "\x00" not in t), max_size=3),
    grace=st.floats(min_value=0, allow_nan=False),
)
@settings(max_examples=30, deadline=None)
def test_config_prints_toml_that_reads_back_to_the_same_settings(
    tmp_path_factory: pytest.TempPathFactory, port: int, hosts: list[str], grace: float
) -> None:
    env = {
        "FOUNDATION_CACHE__PORT": str(port),
        "FOUNDATION_POOL__ALLOWED_HOSTS": json.dumps(hosts),
        "FOUNDATION_SHUTDOWN_GRACE_S": repr(grace),
    }
    code, out, err = run_in_process(["config"], env)
    assert code == 0, err
    path = tmp_path_factory.mktemp("config") / "printed.toml"
    path.write_text(out)
    with foundation_env(env):
        expected = load_settings()
    with foundation_env({}):
        assert load_settings(path) == expected
    assert tomllib.loads(out)["cache"]["port"] == port
