"""Structured logs (structlog over the standard library's logging), always to stderr.

One configuration per process: JSON lines when stderr is not a terminal (or `log_format = "json"`), a
readable console format on a terminal (or `"console"`). Records from other libraries that use `logging`
(grpc, SQLAlchemy, Alembic) go through the same renderer, so one process writes one format.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog
import structlog.tracebacks

LogFormat = Literal["auto", "json", "console"]
LogLevel = Literal["debug", "info", "warning", "error"]


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at the time of the record.

    A handler that kept the stream it was created with would write into a closed stream once a test
    runner swaps stderr between tests.
    """

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def _renderer(log_format: LogFormat) -> structlog.typing.Processor:
    use_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    if use_json:
        return structlog.processors.JSONRenderer()
    # Plain tracebacks: a rich one with local variables could print secrets into a terminal's scrollback.
    return structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)


def configure_logging(level: LogLevel = "info", log_format: LogFormat = "auto") -> None:
    """Sets up structlog and the root logger; calling it again replaces the previous setup."""
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    renderer = _renderer(log_format)
    final: list[structlog.typing.Processor] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if isinstance(renderer, structlog.processors.JSONRenderer):
        # JSON keeps the traceback as structured frames (without local variables: they may hold secrets);
        # the console renderer prints it itself.
        transformer = structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        final.append(structlog.processors.ExceptionRenderer(transformer))
    final.append(renderer)
    formatter = structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=final)

    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _StderrHandler):
            root.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Chatty libraries: grpc logs every cancelled call, Alembic its plugins and DDL mode (the store logs
    # the migration itself). Their warnings and errors still show.
    for noisy in ("grpc", "alembic"):
        logging.getLogger(noisy).setLevel(max(root.level, logging.WARNING))


def get_logger(name: str, **bound: object) -> structlog.stdlib.BoundLogger:
    """A logger named `name` with `bound` key/values on every record.

    The logger is lazy: it follows the configuration in force when it logs, not when it was created.
    """
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name, **bound)
    return logger
