"""Errors reach clients as google.rpc.Status with details; an unexpected exception becomes INTERNAL with an
error id that is also logged; UNKNOWN never leaks — for every kind of handler, in every process."""

from __future__ import annotations

import logging
import re

import grpc
import pytest
from google.protobuf.wrappers_pb2 import StringValue

from tests.contract.probe import Probe, ProbeClient
from tests.harness import RichStatus, read_all, rich_status, running_service

PROCESSES = ["signals", "limiter", "cache", "pool", "gateway"]


def _assert_internal(status: RichStatus, service: str, caplog: pytest.LogCaptureFixture) -> str:
    assert status.code == grpc.StatusCode.INTERNAL, status
    match = re.fullmatch(r"internal error ([0-9a-f]{32})", status.message)
    assert match, status.message
    error_id = match.group(1)
    assert status.error_info is not None
    assert status.error_info.reason == "INTERNAL"
    assert status.error_info.domain == f"{service}.foundation"
    assert status.error_info.metadata["error_id"] == error_id
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR and error_id in str(r.msg)]
    assert logged, f"error id {error_id} was not logged"
    event = logged[0].msg
    assert isinstance(event, dict)
    assert isinstance(event.get("exc_info"), BaseException), "the stack was not logged"
    return error_id


async def _failure(awaitable) -> RichStatus:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await awaitable
    return rich_status(failed.value)


@pytest.mark.parametrize("service", PROCESSES)
async def test_handler_exceptions_become_internal_with_a_logged_error_id(
    service: str, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    probe = Probe()
    async with running_service(service, db_url, extra_parts=probe.parts()) as svc:
        client = ProbeClient(svc.channel)
        ids = set()
        ids.add(
            _assert_internal(await _failure(client.unary("Crash")(StringValue(value="x"))), service, caplog)
        )
        # A response grpc could not serialize would otherwise end as UNKNOWN.
        ids.add(_assert_internal(await _failure(client.unary("WrongType")(StringValue())), service, caplog))

        for method in ("CrashGenerator", "CrashWriter"):
            received, error = await read_all(client.server_stream(method)(StringValue()))
            assert [m.value for m in received] == ["first"], method
            assert error is not None
            ids.add(_assert_internal(rich_status(error), service, caplog))

        messages = [StringValue(value="a"), StringValue(value="boom")]
        status = await _failure(client.client_stream("Collect")(iter(messages)))
        ids.add(_assert_internal(status, service, caplog))

        chat = client.bidi("Chat")(iter([StringValue(value="hi"), StringValue(value="boom")]))
        replies, error = await read_all(chat)
        assert [r.value for r in replies] == ["HI"]
        assert error is not None
        ids.add(_assert_internal(rich_status(error), service, caplog))
        assert len(ids) == 6, "each failure gets its own id"


@pytest.mark.parametrize("service", PROCESSES)
async def test_service_errors_carry_their_details(service: str, db_url: str) -> None:
    probe = Probe()
    async with running_service(service, db_url, extra_parts=probe.parts()) as svc:
        refuse = ProbeClient(svc.channel).unary("Refuse")
        domain = f"{service}.foundation"

        status = await _failure(refuse(StringValue(value="not_found")))
        assert status.code == grpc.StatusCode.NOT_FOUND
        assert status.details["ResourceInfo"].resource_name == "probes/x"
        assert status.error_info is not None
        assert (status.error_info.reason, status.error_info.domain) == ("NOT_FOUND", domain)

        status = await _failure(refuse(StringValue(value="exhausted")))
        assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert status.retry_after() == 2.5
        assert status.details["QuotaFailure"].violations[0].subject == "probes/x"

        status = await _failure(refuse(StringValue(value="other")))
        assert status.code == grpc.StatusCode.INVALID_ARGUMENT
        [violation] = status.details["BadRequest"].field_violations
        assert violation.field == "value"


@pytest.mark.parametrize("service", PROCESSES)
async def test_undecodable_requests_are_invalid_argument_not_unknown(service: str, db_url: str) -> None:
    probe = Probe()
    garbage = b"\xff\xff\xff\xff"  # field 0x1fffffff... with an invalid wire type: protobuf refuses it
    async with running_service(service, db_url, extra_parts=probe.parts()) as svc:
        raw_unary = svc.channel.unary_unary("/foundation.test.v1.Probe/Echo", None, None)
        status = await _failure(raw_unary(garbage))
        assert status.code == grpc.StatusCode.INVALID_ARGUMENT
        assert status.details["BadRequest"].field_violations[0].field == "request"

        raw_stream = svc.channel.stream_unary("/foundation.test.v1.Probe/Collect", None, None)
        status = await _failure(raw_stream(iter([StringValue(value="ok").SerializeToString(), garbage])))
        assert status.code == grpc.StatusCode.INVALID_ARGUMENT
        assert status.error_info is not None


async def test_the_callers_deadline_is_visible_inside_the_handler(sqlite_url: str) -> None:
    probe = Probe()
    async with running_service("signals", sqlite_url, extra_parts=probe.parts()) as svc:
        remaining = ProbeClient(svc.channel).unary("Remaining")
        with_deadline = await remaining(StringValue(), timeout=3.0)
        assert 2.0 < float(with_deadline.value) <= 3.1  # the wire format rounds timeouts up
        without = await remaining(StringValue())
        assert without.value == "none"
