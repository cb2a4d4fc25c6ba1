"""`foundation limiter …`: the limiter from a shell, for people and scripts.

Each verb is one RPC to the limiter at `--address` (default: the configured `[limiter]` host and port). Output
is a short line per result, or the response as proto3 JSON with `--json`. A gRPC error prints
`error: <CODE>: <message>` plus one line per bad field and exits 1; bad arguments or settings exit 2, before
any call. A denial is a result (exit 0), unless `--fail-if-denied` asks for exit 3.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import grpc
import typer
from google.protobuf import duration_pb2, field_mask_pb2, json_format
from google.protobuf.message import Message
from typer._click.exceptions import ClickException

from foundation.limiter.v1 import limiter_pb2 as pb
from foundation.limiter.v1 import limiter_pb2_grpc as rpc
from services.runtime.config import ConfigError, load_settings

app = typer.Typer(help="Client commands for the limiter service.", no_args_is_help=True)

DENIED_EXIT = 3


class AlgorithmName(StrEnum):
    """The algorithms by their command-line names."""

    GCRA = "gcra"
    FIXED_WINDOW = "fixed-window"
    SLIDING_WINDOW = "sliding-window"
    CONCURRENCY = "concurrency"


ALGORITHMS = {
    "gcra": pb.Limiter.ALGORITHM_GCRA,
    "fixed-window": pb.Limiter.ALGORITHM_FIXED_WINDOW,
    "sliding-window": pb.Limiter.ALGORITHM_SLIDING_WINDOW,
    "concurrency": pb.Limiter.ALGORITHM_CONCURRENCY,
}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
R = TypeVar("R", bound=Message)

Address = Annotated[
    str | None, typer.Option("--address", help="host:port of the limiter (default: from settings).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the response as proto3 JSON.")]


class LimiterCliError(ClickException):
    """A failed call: printed by the `foundation` entry point as `error: …`, exit 1."""


class LimiterUsageError(LimiterCliError):
    """Bad arguments or configuration, found before any call: `error: …`, exit 2 as for other usage errors."""

    exit_code = 2


def duration(text: str) -> duration_pb2.Duration:
    """`500ms`, `60s`, `5m`, `1h`, `2d` or plain seconds as a Duration."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise LimiterUsageError(f"{text!r} is not a duration like 500ms, 60s, 5m, 1h or 2d")
    result = duration_pb2.Duration()
    result.FromNanoseconds(round(float(match.group(1)) * _UNIT_SECONDS[match.group(2)] * 1e9))
    return result


def _address(ctx: typer.Context, address: str | None) -> str:
    if address:
        return address
    config: Path | None = ctx.obj if isinstance(ctx.obj, Path) else None
    try:
        section = load_settings(config).limiter
    except ConfigError as exc:
        raise LimiterUsageError(str(exc)) from None
    host = "127.0.0.1" if section.host in ("0.0.0.0", "::") else section.host
    return f"{host}:{section.port}"


def _call(address: str, call: Callable[[rpc.LimiterServiceStub], Awaitable[R]]) -> R:
    async def run() -> R:
        async with grpc.aio.insecure_channel(address) as channel:
            return await call(rpc.LimiterServiceStub(channel))

    try:
        return asyncio.run(run())
    except grpc.aio.AioRpcError as error:
        raise LimiterCliError(_describe(error)) from None


def _describe(error: grpc.aio.AioRpcError) -> str:
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    text = f"{error.code().name}: {error.details()}"
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            text += "".join(f"\n  {v.field}: {v.description}" for v in bad.field_violations)
    return text


def _print(message: Message, as_json: bool, line: str) -> None:
    typer.echo(json_format.MessageToJson(message) if as_json else line)


def _limiter_line(limiter: pb.Limiter) -> str:
    kind = pb.Limiter.Algorithm.Name(limiter.algorithm).removeprefix("ALGORITHM_").lower().replace("_", "-")
    extra = f" burst {limiter.burst}" if limiter.HasField("burst") else ""
    flags = " shadow" if limiter.shadow else ""
    mode = pb.Limiter.FailureMode.Name(limiter.failure_mode).removeprefix("FAILURE_MODE_").lower()
    return (
        f"{limiter.name}  {kind} {limiter.limit} per {limiter.period.ToMilliseconds() / 1000:g}s"
        f"{extra} {mode}{flags}"
    )


def _limiter(**options: Any) -> tuple[pb.Limiter, list[str]]:
    limiter, paths = pb.Limiter(), []
    if options["algorithm"] is not None:
        limiter.algorithm = ALGORITHMS[AlgorithmName(options["algorithm"]).value]
        paths.append("algorithm")
    for name in ("limit", "burst"):
        if options[name] is not None:
            setattr(limiter, name, options[name])
            paths.append(name)
    for name in ("period", "lease_ttl"):
        if options[name] is not None:
            getattr(limiter, name).CopyFrom(duration(options[name]))
            paths.append(name)
    if options["fail_closed"] is not None:
        limiter.failure_mode = (
            pb.Limiter.FAILURE_MODE_FAIL_CLOSED
            if options["fail_closed"]
            else pb.Limiter.FAILURE_MODE_FAIL_OPEN
        )
        paths.append("failure_mode")
    if options["shadow"] is not None:
        limiter.shadow = options["shadow"]
        paths.append("shadow")
    if options["description"] is not None:
        limiter.description = options["description"]
        paths.append("description")
    return limiter, paths


AlgorithmOption = Annotated[AlgorithmName | None, typer.Option()]
LimitOption = Annotated[int | None, typer.Option(help="Units per period (leases at once for concurrency).")]
PeriodOption = Annotated[str | None, typer.Option(help="e.g. 500ms, 60s, 1h.")]
BurstOption = Annotated[int | None, typer.Option(help="GCRA bucket size (default: the limit).")]
FailOption = Annotated[bool | None, typer.Option("--fail-closed/--fail-open", help="When the store is down.")]
ShadowOption = Annotated[
    bool | None, typer.Option("--shadow/--no-shadow", help="Decide and count, always allow.")
]
TtlOption = Annotated[str | None, typer.Option(help="Concurrency lease lifetime, e.g. 30s.")]
DescriptionOption = Annotated[str | None, typer.Option()]


@app.command()
def create(
    ctx: typer.Context,
    limiter_id: str,
    algorithm: AlgorithmOption = None,
    limit: LimitOption = None,
    period: PeriodOption = None,
    burst: BurstOption = None,
    fail_closed: FailOption = None,
    shadow: ShadowOption = None,
    lease_ttl: TtlOption = None,
    description: DescriptionOption = None,
    address: Address = None,
    as_json: AsJson = False,
) -> None:
    """Create a limiter (defaults: GCRA, 1000 per 60s, burst = limit, fail open)."""
    limiter, _ = _limiter(
        **{k: v for k, v in locals().items() if k not in ("ctx", "limiter_id", "address", "as_json")}
    )
    request = pb.CreateLimiterRequest(limiter_id=limiter_id, limiter=limiter)
    response = _call(_address(ctx, address), lambda stub: stub.CreateLimiter(request))
    _print(response, as_json, _limiter_line(response.limiter))


@app.command()
def update(
    ctx: typer.Context,
    limiter_id: str,
    algorithm: AlgorithmOption = None,
    limit: LimitOption = None,
    period: PeriodOption = None,
    burst: BurstOption = None,
    fail_closed: FailOption = None,
    shadow: ShadowOption = None,
    lease_ttl: TtlOption = None,
    description: DescriptionOption = None,
    address: Address = None,
    as_json: AsJson = False,
) -> None:
    """Change the given fields of a limiter (the next check already uses them)."""
    limiter, paths = _limiter(
        **{k: v for k, v in locals().items() if k not in ("ctx", "limiter_id", "address", "as_json")}
    )
    if not paths:
        raise LimiterUsageError("nothing to change: give at least one option")
    limiter.name = f"limiters/{limiter_id}"
    request = pb.UpdateLimiterRequest(limiter=limiter, update_mask=field_mask_pb2.FieldMask(paths=paths))
    response = _call(_address(ctx, address), lambda stub: stub.UpdateLimiter(request))
    _print(response, as_json, _limiter_line(response.limiter))


@app.command()
def get(ctx: typer.Context, limiter_id: str, address: Address = None, as_json: AsJson = False) -> None:
    """Show one limiter."""
    request = pb.GetLimiterRequest(name=f"limiters/{limiter_id}")
    response = _call(_address(ctx, address), lambda stub: stub.GetLimiter(request))
    _print(response, as_json, _limiter_line(response.limiter))


@app.command("list")
def list_limiters(ctx: typer.Context, address: Address = None, as_json: AsJson = False) -> None:
    """List every limiter."""
    target = _address(ctx, address)
    token, limiters = "", list[pb.Limiter]()
    while True:
        page = _call(target, _lister(pb.ListLimitersRequest(page_size=1000, page_token=token)))
        limiters.extend(page.limiters)
        token = page.next_page_token
        if not token:
            break
    everything = pb.ListLimitersResponse(limiters=limiters)
    _print(everything, as_json, "\n".join(_limiter_line(limiter) for limiter in limiters) or "(no limiters)")


def _lister(
    request: pb.ListLimitersRequest,
) -> Callable[[rpc.LimiterServiceStub], Awaitable[pb.ListLimitersResponse]]:
    async def call(stub: rpc.LimiterServiceStub) -> pb.ListLimitersResponse:
        response: pb.ListLimitersResponse = await stub.ListLimiters(request)
        return response

    return call


@app.command()
def delete(ctx: typer.Context, limiter_id: str, address: Address = None, as_json: AsJson = False) -> None:
    """Delete a limiter and its keys."""
    request = pb.DeleteLimiterRequest(name=f"limiters/{limiter_id}")
    response = _call(_address(ctx, address), lambda stub: stub.DeleteLimiter(request))
    _print(response, as_json, f"deleted limiters/{limiter_id} ({response.deleted_keys} keys)")


def parse_item(text: str) -> pb.CheckItem:
    """`id:key` or `id:key:cost` as a CheckItem.

    Limiter ids hold no ':', keys may: a trailing `:<digits>` is the cost, so a key that itself ends in
    `:<digits>` is written with its cost (`api:order:7:1`).
    """
    limiter_id, colon, rest = text.partition(":")
    if not colon or not limiter_id or not rest:
        raise LimiterUsageError(f"--item {text!r} is not id:key or id:key:cost")
    key, colon, cost = rest.rpartition(":")
    item = pb.CheckItem(limiter=f"limiters/{limiter_id}", key=rest)
    if colon and key and cost.isascii() and cost.isdigit():
        item.key, item.cost = key, int(cost)
    return item


def _check_items(
    limiter_id: str | None, key: str | None, cost: int | None, items: list[str]
) -> list[pb.CheckItem]:
    if (limiter_id is None) != (key is None):
        raise LimiterUsageError("give both <id> and <key>, or --item id:key[:cost] instead")
    if limiter_id is None and not items:
        raise LimiterUsageError("nothing to check: give <id> <key> or at least one --item id:key[:cost]")
    if items and cost is not None:
        raise LimiterUsageError("--cost applies to <id> <key>; give an --item its cost as id:key:cost")
    result = [parse_item(text) for text in items]
    if limiter_id is not None and key is not None:
        single = pb.CheckItem(limiter=f"limiters/{limiter_id}", key=key)
        if cost is not None:
            single.cost = cost
        result.insert(0, single)
    return result


def _result_line(item: pb.CheckItem, result: pb.CheckResult, *, prefix: bool, rolled_back: bool) -> str:
    if not result.allowed:
        verdict = f"denied, retry after {result.retry_after.ToMilliseconds()} ms"
    else:
        # ALL_OR_NOTHING: an item within its limit consumed nothing when another item was denied.
        verdict = "within limit, not consumed" if rolled_back else "allowed"
    lease = f", lease {result.lease_id}" if result.lease_id else ""
    shadow = " (shadow: would be denied)" if result.shadow_denied else ""
    head = f"{item.limiter.removeprefix('limiters/')} {item.key}: " if prefix else ""
    return f"{head}{verdict}: {result.remaining} of {result.limit} left{lease}{shadow}"


@app.command()
def check(
    ctx: typer.Context,
    limiter_id: Annotated[str | None, typer.Argument(show_default=False)] = None,
    key: Annotated[str | None, typer.Argument(show_default=False)] = None,
    cost: Annotated[int | None, typer.Option(help="Units to take (default 1; 0 peeks).")] = None,
    item: Annotated[
        list[str] | None,
        typer.Option("--item", help="id:key[:cost]; repeat for a multi-item check.", show_default=False),
    ] = None,
    independent: Annotated[
        bool, typer.Option(help="Decide each item on its own (default: all or nothing).")
    ] = False,
    dry_run: Annotated[bool, typer.Option(help="Decide without consuming.")] = False,
    fail_if_denied: Annotated[bool, typer.Option(help=f"Exit {DENIED_EXIT} when denied.")] = False,
    address: Address = None,
    as_json: AsJson = False,
) -> None:
    """Check (and consume) `cost` units of `key`, or of several `--item`s at once."""
    items = _check_items(limiter_id, key, cost, item or [])
    mode = pb.CheckRequest.MODE_INDEPENDENT if independent else pb.CheckRequest.MODE_ALL_OR_NOTHING
    request = pb.CheckRequest(items=items, mode=mode, dry_run=dry_run)
    response = _call(_address(ctx, address), lambda stub: stub.Check(request))
    several = len(items) > 1
    rolled_back = not response.allowed and not independent and not dry_run
    lines = [
        _result_line(i, r, prefix=several, rolled_back=rolled_back)
        for i, r in zip(items, response.results, strict=True)
    ]
    if several:
        lines.insert(0, "allowed" if response.allowed else "denied")
    if dry_run:
        lines = [f"dry run, nothing consumed: {line}" for line in lines]
    _print(response, as_json, "\n".join(lines))
    if fail_if_denied and not response.allowed:
        raise typer.Exit(DENIED_EXIT)


@app.command()
def status(
    ctx: typer.Context, limiter_id: str, key: str, address: Address = None, as_json: AsJson = False
) -> None:
    """Show a key's remaining quota without consuming."""
    request = pb.GetStatusRequest(limiter=f"limiters/{limiter_id}", key=key)
    response = _call(_address(ctx, address), lambda stub: stub.GetStatus(request))
    reset = response.reset_after.ToMilliseconds()
    _print(response, as_json, f"{response.remaining} of {response.limit} left, full again in {reset} ms")


@app.command()
def reset(
    ctx: typer.Context, limiter_id: str, key: str, address: Address = None, as_json: AsJson = False
) -> None:
    """Clear one key's state."""
    request = pb.ResetRequest(limiter=f"limiters/{limiter_id}", key=key)
    response = _call(_address(ctx, address), lambda stub: stub.Reset(request))
    _print(response, as_json, "reset" if response.existed else "nothing to reset")


@app.command()
def release(ctx: typer.Context, lease_id: str, address: Address = None, as_json: AsJson = False) -> None:
    """Free a concurrency lease."""
    request = pb.ReleaseRequest(lease_id=lease_id)
    response = _call(_address(ctx, address), lambda stub: stub.Release(request))
    _print(response, as_json, "released" if response.released else "not held (unknown, released or expired)")


@app.command()
def stats(
    ctx: typer.Context,
    limiter_id: Annotated[str | None, typer.Argument()] = None,
    address: Address = None,
    as_json: AsJson = False,
) -> None:
    """Decision counters per limiter and in total."""
    request = pb.GetStatsRequest(limiter=f"limiters/{limiter_id}" if limiter_id else "")
    response = _call(_address(ctx, address), lambda stub: stub.GetStats(request))
    lines = [
        f"{s.limiter or 'total':<30} checks {s.checks} allowed {s.allowed} denied {s.denied} "
        f"shadow-denied {s.shadow_denied} keys {s.active_keys}"
        for s in [*response.limiters, response.total]
    ]
    _print(response, as_json, "\n".join(lines))
