"""What the launcher reads from its children and writes for them: READY lines, tagged logs, failure reasons."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TextIO


@dataclass(frozen=True)
class ReadyLine:
    """What a service prints on stdout once SERVING: `READY <service> <host>:<port> metrics=<port|off> …`."""

    service: str
    address: str
    extras: dict[str, str]
    """The `key=value` words after the address (`metrics`, and e.g. `http` for the gateway)."""

    @classmethod
    def parse(cls, line: str) -> ReadyLine | None:
        """The READY line's fields, or None when `line` is not a READY line."""
        words = line.split()
        if len(words) < 3 or words[0] != "READY":
            return None
        extras = dict(word.split("=", 1) for word in words[3:] if "=" in word)
        return cls(service=words[1], address=words[2], extras=extras)


@dataclass
class LogSink:
    """One stream carrying every child's log lines and the launcher's own notes, each tagged with its process.

    In JSON mode each line is a JSON object with a `service` key (JSON lines of children get the key added);
    otherwise lines are prefixed with the process name.
    """

    stream: TextIO
    json_mode: bool

    def child_line(self, service: str, line: str) -> None:
        """Forwards one log line of a child."""
        if self.json_mode:
            record = _json_object(line) or {"event": line}
            own = record.get("service", service)
            if own != service:  # the child's own field of that name is kept, under another key
                record["service_field"] = own
            record["service"] = service
            self._write(json.dumps(record))
        else:
            self._write(f"{service:<9}| {line}")

    def note(self, event: str, **fields: Any) -> None:
        """Writes one message of the launcher itself."""
        if self.json_mode:
            self._write(json.dumps({"service": "launcher", "event": event, **fields}))
        else:
            extra = "".join(f" {key}={value}" for key, value in fields.items())
            self._write(f"{'launcher':<9}| {event}{extra}")

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text + "\n")
            self.stream.flush()
        except (BrokenPipeError, ValueError):  # our stderr went away; keep supervising the children
            pass


def _json_object(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def reason_of(line: str) -> str:
    """The human part of a log line: a JSON record's `event` (and `error`), else the line without `error: `."""
    record = _json_object(line)
    if record is None:
        return line.removeprefix("error: ")
    reason = str(record.get("event", line))
    if "error" in record:
        reason += f": {record['error']}"
    return reason


def exit_text(returncode: int | None) -> str:
    """How a child ended, for messages: `exit code 1`, `killed by SIGKILL`."""
    if returncode is not None and returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            pass
    return f"exit code {returncode}"


async def read_lines(stream: asyncio.StreamReader) -> AsyncIterator[str]:
    """The lines of a child's output, decoded, without line ends; a line beyond the stream's limit is dropped."""
    while True:
        try:
            raw = await stream.readline()
        except ValueError:  # a line beyond the limit; its bytes are dropped, the next line is read
            continue
        if not raw:
            return
        yield raw.decode(errors="replace").rstrip("\r\n")
