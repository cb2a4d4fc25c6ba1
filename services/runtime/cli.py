"""The `foundation` command: run the suite, serve one service, migrate the database, check health.

Every expected failure ends with one line `error: …` on stderr and a non-zero exit code, never a traceback:
2 for bad usage or configuration, 1 for everything else. Client verbs of the services (`foundation limiter …`)
are typer sub-apps listed in CLIENT_APPS, one module each, so a service adds its verbs without touching this file
beyond one line.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import math
import sys
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
import typer
from typer._click.exceptions import ClickException, NoArgsIsHelpError

from services.runtime.client import HealthResult, check_health, dial_address
from services.runtime.config import SERVICE_NAMES, ConfigError, Settings, load_settings
from services.runtime.launcher import Launcher, LaunchError, bind_to_launcher, plan

CLIENT_APPS: tuple[tuple[str, str], ...] = (("limiter", "services.limiter.cli"),)
"""(command name, module exposing `app: typer.Typer`) of each client sub-app."""

USAGE_EXIT = 2
FAILURE_EXIT = 1

app = typer.Typer(
    name="foundation",
    help="Foundation: rate limiter, cache, HTTP pool, signal router and gateway as gRPC services.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class CliError(Exception):
    """An expected failure: printed as `error: <message>`, exits with `exit_code`."""

    def __init__(self, message: str, exit_code: int = FAILURE_EXIT) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@app.callback()
def _options(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="TOML configuration file (default: $FOUNDATION_CONFIG)."),
    ] = None,
) -> None:
    ctx.obj = config


def _settings(ctx: typer.Context, **overrides: Any) -> Settings:
    try:
        return load_settings(ctx.obj, **overrides)
    except ConfigError as exc:
        raise CliError(str(exc), USAGE_EXIT) from None


def _log_to_stderr(settings: Settings) -> None:
    """Logs of commands that do work in this process (migrations) go to stderr, as the services' do."""
    from services.runtime.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)


def _config_file(ctx: typer.Context) -> Path | None:
    path: Path | None = ctx.obj
    return path


def _service_name(name: str) -> str:
    if name not in SERVICE_NAMES:
        raise CliError(f"unknown service {name!r}; known: {', '.join(SERVICE_NAMES)}", USAGE_EXIT)
    return name


def shown_url(url: str) -> str:
    """A database URL fit for messages: the password is masked."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (for database errors, of the driver's own error)."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return lines[0].strip() if lines else type(cause).__name__


def migrate_database(url: str) -> str:
    """Upgrades the database at `url` to the latest schema; returns the revision it is at."""
    from alembic.util import CommandError

    from services.runtime.store import StoreUnavailable
    from services.runtime.store.migrate import current_revision, upgrade

    try:
        upgrade(url)
        revision = current_revision(url)
    except StoreUnavailable as exc:
        raise CliError(exc.message) from None
    except (sa.exc.SQLAlchemyError, CommandError, OSError) as exc:
        raise CliError(f"cannot migrate the database {shown_url(url)}: {one_line(exc)}") from None
    return revision or "base"


@app.command()
def run(
    ctx: typer.Context,
    only: Annotated[
        str | None,
        typer.Option(
            "--only", help="Comma-separated services to start (default: all), e.g. signals,limiter."
        ),
    ] = None,
) -> None:
    """Migrate the database, then start the suite in dependency order; Ctrl-C stops it."""
    settings = _settings(ctx)
    try:
        levels = plan(None if only is None else [name.strip() for name in only.split(",") if name.strip()])
    except LaunchError as exc:
        raise CliError(str(exc), USAGE_EXIT) from None
    launcher = Launcher(settings, levels, config_file=_config_file(ctx))
    _log_to_stderr(settings)
    if settings.store.migrate_on_start:
        revision = migrate_database(settings.database_url)
        launcher.log.note("database ready", url=shown_url(settings.database_url), revision=revision)
    raise typer.Exit(asyncio.run(launcher.run()))


@app.command()
def serve(
    ctx: typer.Context,
    service: Annotated[str, typer.Argument(help=f"One of: {', '.join(SERVICE_NAMES)}.")],
    port: Annotated[
        int | None, typer.Option(help="gRPC port (0: any free port); default from config.")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address to bind; default from config.")] = None,
) -> None:
    """Run one service in the foreground (as `foundation run` does for each; also for replicas)."""
    try:
        bind_to_launcher()
    except (LaunchError, OSError) as exc:
        raise CliError(str(exc)) from None
    name = _service_name(service)
    section = {key: value for key, value in (("port", port), ("host", host)) if value is not None}
    settings = _settings(ctx, **({name: section} if section else {}))
    from services.runtime.server import serve as serve_service

    raise typer.Exit(asyncio.run(serve_service(name, settings)))


@app.command()
def migrate(ctx: typer.Context) -> None:
    """Upgrade the database to the latest schema and print its revision."""
    settings = _settings(ctx)
    _log_to_stderr(settings)
    revision = migrate_database(settings.database_url)
    typer.echo(f"{shown_url(settings.database_url)} at revision {revision}")


@app.command()
def health(
    ctx: typer.Context,
    targets: Annotated[
        list[str] | None,
        typer.Argument(help="Service names or host:port addresses (default: all five services)."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each answer.")] = 2.0,
) -> None:
    """Check the health of services; exit 0 only if every one is SERVING."""
    settings = _settings(ctx)
    checks = [_health_target(settings, target) for target in targets or SERVICE_NAMES]
    results = asyncio.run(_check_all([address for _, address in checks], timeout))
    width = max(len(label) for label, _ in checks)
    for (label, _), result in zip(checks, results, strict=True):
        detail = f"  ({result.detail})" if result.detail and not result.serving else ""
        typer.echo(f"{label:<{width}}  {result.address:<21} {result.status}{detail}")
    failing = sum(not result.serving for result in results)
    if failing:
        raise CliError(f"{failing} of {len(results)} not SERVING")


@app.command("config")
def show_config(ctx: typer.Context) -> None:
    """Print the effective settings (defaults < file < FOUNDATION_* env) as TOML; unset ones commented."""
    typer.echo(settings_toml(_settings(ctx)), nl=False)


def settings_toml(settings: Settings) -> str:
    """Settings as a TOML document that load_settings reads back to the same values."""
    top: list[str] = []
    sections: list[str] = []
    for key, value in settings.model_dump(mode="json").items():
        if isinstance(value, dict):
            sections.append(f"\n[{key}]")
            sections.extend(_toml_line(name, item) for name, item in value.items())
        else:
            top.append(_toml_line(key, value))
    return "\n".join(top + sections) + "\n"


def _toml_line(key: str, value: object) -> str:
    if value is None:  # TOML has no null: leaving the key out keeps the default
        return f"# {key} = (not set)"
    return f"{key} = {toml_value(value)}"


def toml_value(value: object) -> str:
    """One value in TOML syntax (tables inline)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # inf, -inf, nan: TOML's spelling, not JSON's
    return json.dumps(value)  # numbers and booleans are written alike in JSON and TOML


def _toml_string(text: str) -> str:
    # TOML basic strings forbid control characters, DEL included (JSON lets DEL through unescaped).
    escaped = "".join(
        f"\\u{ord(char):04x}" if ord(char) < 0x20 or ord(char) == 0x7F else char
        for char in text.replace("\\", "\\\\").replace('"', '\\"')
    )
    return f'"{escaped}"'


def _health_target(settings: Settings, target: str) -> tuple[str, str]:
    """(label, address) for a service name or a host:port."""
    if target in SERVICE_NAMES:
        section = settings.service(target)
        return target, dial_address(f"{section.host}:{section.port}")
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise CliError(
            f"{target!r} is neither a service ({', '.join(SERVICE_NAMES)}) nor host:port", USAGE_EXIT
        )
    for name in SERVICE_NAMES:
        section = settings.service(name)
        if dial_address(f"{section.host}:{section.port}") == dial_address(target):
            return name, target
    return "-", target


async def _check_all(addresses: list[str], rpc_timeout_s: float) -> list[HealthResult]:
    checks = (check_health(address, rpc_timeout_s=rpc_timeout_s) for address in addresses)
    return list(await asyncio.gather(*checks))


def _mount_client_apps() -> None:
    for name, module in CLIENT_APPS:
        sub_app: typer.Typer = importlib.import_module(module).app
        app.add_typer(sub_app, name=name)


_mount_client_apps()


def _print_error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


def main(args: list[str] | None = None) -> int:
    """The `foundation` console script; returns the exit code."""
    try:
        result = app(args=args, prog_name="foundation", standalone_mode=False)
    except NoArgsIsHelpError as exc:
        exc.show()
        return USAGE_EXIT
    except ClickException as exc:
        _print_error(exc.format_message())
        return exc.exit_code
    except CliError as exc:
        _print_error(str(exc))
        return exc.exit_code
    except typer.Abort:
        _print_error("aborted")
        return FAILURE_EXIT
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
