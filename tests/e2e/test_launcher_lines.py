"""What the launcher reads from and writes for its children: READY lines, tagged logs, failure reasons."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.runtime.child_output import LogSink, ReadyLine, exit_text, reason_of
from services.runtime.launcher import LaunchError, plan


def test_ready_line_fields() -> None:
    ready = ReadyLine.parse("READY gateway 127.0.0.1:7100 metrics=7200 http=7080")
    assert ready == ReadyLine("gateway", "127.0.0.1:7100", {"metrics": "7200", "http": "7080"})
    assert ReadyLine.parse("READY limiter [::1]:7101 metrics=off") == ReadyLine(
        "limiter", "[::1]:7101", {"metrics": "off"}
    )
    assert ReadyLine.parse("ready limiter 127.0.0.1:1") is None
    assert ReadyLine.parse("READY limiter") is None


@given(st.text())
def test_any_line_parses_or_is_not_ready(line: str) -> None:
    ready = ReadyLine.parse(line)
    if ready is not None:
        assert line.split()[0] == "READY"
        assert ready.address == line.split()[2]


@given(st.text().filter(lambda text: "\n" not in text and "\r" not in text))
def test_every_child_line_becomes_one_json_record_tagged_with_the_service(line: str) -> None:
    stream = io.StringIO()
    LogSink(stream, json_mode=True).child_line("cache", line)
    written = stream.getvalue().splitlines()
    assert len(written) == 1
    record = json.loads(written[0])
    assert record["service"] == "cache"
    if not line.startswith("{"):
        assert record["event"] == line


def test_console_lines_are_prefixed_and_json_records_keep_their_fields() -> None:
    console = io.StringIO()
    LogSink(console, json_mode=False).child_line("pool", "hello")
    LogSink(console, json_mode=False).note("started", child="pool", pid=7)
    assert console.getvalue().splitlines() == ["pool     | hello", "launcher | started child=pool pid=7"]
    as_json = io.StringIO()
    LogSink(as_json, json_mode=True).child_line("pool", json.dumps({"event": "serving", "level": "info"}))
    LogSink(as_json, json_mode=True).child_line("pool", json.dumps({"event": "x", "service": "grpc.health"}))
    first, second = (json.loads(line) for line in as_json.getvalue().splitlines())
    assert first == {"service": "pool", "event": "serving", "level": "info"}
    assert second == {"service": "pool", "event": "x", "service_field": "grpc.health"}


def test_reasons_come_from_plain_lines_and_json_records() -> None:
    assert (
        reason_of("error: port 7101 on 127.0.0.1 is already in use")
        == "port 7101 on 127.0.0.1 is already in use"
    )
    assert reason_of("Killed") == "Killed"
    assert reason_of(json.dumps({"event": "startup failed", "error": "boom"})) == "startup failed: boom"
    assert exit_text(1) == "exit code 1"
    assert exit_text(-9) == "killed by SIGKILL"


def test_plan_keeps_the_start_order_whatever_the_order_asked() -> None:
    assert plan(["gateway", "limiter", "signals"]) == [("signals",), ("limiter",), ("gateway",)]
    assert plan(None) == [("signals",), ("limiter", "cache", "pool"), ("gateway",)]
    with pytest.raises(LaunchError, match="unknown service 'redis'"):
        plan(["redis"])
