"""The profiler's summary of py-spy's raw samples (the sampling itself needs ptrace and a loaded server)."""

from __future__ import annotations

from bench.profile import summarise

RAW = """\
thread (101): MainThread;run (asyncio/runners.py:190);handle (services/runtime/interceptors.py:80);Check (services/limiter/servicer.py:140) 6
thread (101): MainThread;run (asyncio/runners.py:190);handle (services/runtime/interceptors.py:82) 2
thread (102): foundation-store-writer;_main (services/runtime/store/writer.py:120);step (sqlite3:1) 2
"""


def test_the_summary_gives_threads_own_time_and_the_projects_inclusive_time() -> None:
    lines = summarise(RAW, top=10).splitlines()
    assert lines[0] == "10 samples"
    threads = lines[lines.index("--- threads") + 1 : lines.index("--- own")]
    assert threads == [" 80.0%  thread: MainThread", " 20.0%  thread: foundation-store-writer"]
    own = lines[lines.index("--- own") + 1 : lines.index("--- project code, inclusive")]
    assert own[0] == " 60.0%  Check (services/limiter/servicer.py)"  # line numbers merged away
    inclusive = lines[lines.index("--- project code, inclusive") + 1 :]
    assert inclusive[0] == " 80.0%  handle (services/runtime/interceptors.py)"  # both of its lines
    assert not any("asyncio" in line for line in inclusive)


def test_no_samples_says_so() -> None:
    assert summarise("", top=5).startswith("no samples")
