"""Domain errors and their one mapping to `google.rpc.Status`.

Service code raises these; the exception interceptor (services.runtime.interceptors) turns them into a
gRPC status with details. Every status carries exactly one `ErrorInfo` (reason in UPPER_SNAKE, domain
`<svc>.foundation`). Anything else raised inside a handler becomes INTERNAL with an error id: UNKNOWN never
leaks to a client.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status


@dataclass(frozen=True)
class FieldViolation:
    """One bad field: `field` is a path such as `items[3].cost`."""

    field: str
    description: str


@dataclass(frozen=True)
class PreconditionViolation:
    """One unmet precondition, as in google.rpc.PreconditionFailure."""

    type: str
    subject: str
    description: str


class ServiceError(Exception):
    """Base of the errors a handler may raise on purpose."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    reason: str = "INTERNAL"

    def __init__(
        self, message: str, *, reason: str | None = None, metadata: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.metadata: dict[str, str] = dict(metadata or {})

    def details(self) -> list[object]:
        """The google.rpc detail messages besides ErrorInfo."""
        return []

    def to_status(self, domain: str) -> grpc.Status:
        """This error as a `grpc.Status` (for `context.abort_with_status`)."""
        return build_status(
            self.code,
            self.message,
            reason=self.reason,
            domain=domain,
            metadata=self.metadata,
            details=self.details(),
        )


class InvalidArgument(ServiceError):
    """Bad input: INVALID_ARGUMENT with a BadRequest listing every bad field. Nothing was changed."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"

    def __init__(self, violations: Sequence[FieldViolation], *, reason: str | None = None) -> None:
        if not violations:
            raise ValueError("InvalidArgument needs at least one violation")
        self.violations = list(violations)
        summary = "; ".join(f"{v.field}: {v.description}" for v in self.violations[:5])
        if len(self.violations) > 5:
            summary += f"; and {len(self.violations) - 5} more"
        super().__init__(f"invalid argument: {summary}", reason=reason)

    @classmethod
    def of(cls, field: str, description: str) -> InvalidArgument:
        """One bad field."""
        return cls([FieldViolation(field, description)])

    def details(self) -> list[object]:
        return [
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                    for v in self.violations
                ]
            )
        ]


class NotFound(ServiceError):
    """NOT_FOUND with a ResourceInfo naming the missing resource."""

    code = grpc.StatusCode.NOT_FOUND
    reason = "NOT_FOUND"

    def __init__(self, resource_type: str, resource_name: str, *, reason: str | None = None) -> None:
        self.resource_type = resource_type
        self.resource_name = resource_name
        super().__init__(f"{resource_name} not found", reason=reason)

    def details(self) -> list[object]:
        return [
            error_details_pb2.ResourceInfo(
                resource_type=self.resource_type, resource_name=self.resource_name, description="not found"
            )
        ]


class AlreadyExists(ServiceError):
    """ALREADY_EXISTS with a ResourceInfo naming the existing resource."""

    code = grpc.StatusCode.ALREADY_EXISTS
    reason = "ALREADY_EXISTS"

    def __init__(self, resource_type: str, resource_name: str) -> None:
        self.resource_type = resource_type
        self.resource_name = resource_name
        super().__init__(f"{resource_name} already exists")

    def details(self) -> list[object]:
        return [
            error_details_pb2.ResourceInfo(
                resource_type=self.resource_type,
                resource_name=self.resource_name,
                description="already exists",
            )
        ]


class FailedPrecondition(ServiceError):
    """FAILED_PRECONDITION with a PreconditionFailure. The state was left unchanged."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"

    def __init__(self, violations: Sequence[PreconditionViolation], *, reason: str | None = None) -> None:
        self.violations = list(violations)
        summary = "; ".join(f"{v.subject}: {v.description}" for v in self.violations) or "precondition failed"
        super().__init__(summary, reason=reason)

    def details(self) -> list[object]:
        return [
            error_details_pb2.PreconditionFailure(
                violations=[
                    error_details_pb2.PreconditionFailure.Violation(
                        type=v.type, subject=v.subject, description=v.description
                    )
                    for v in self.violations
                ]
            )
        ]


class ResourceExhausted(ServiceError):
    """RESOURCE_EXHAUSTED (overload, a full queue, a bound reached) with QuotaFailure and RetryInfo."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "RESOURCE_EXHAUSTED"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float,
        subject: str = "",
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        self.retry_after = retry_after
        self.subject = subject
        super().__init__(message, reason=reason, metadata=metadata)

    def details(self) -> list[object]:
        return [
            error_details_pb2.QuotaFailure(
                violations=[
                    error_details_pb2.QuotaFailure.Violation(subject=self.subject, description=self.message)
                ]
            ),
            retry_info(self.retry_after),
        ]


class Unavailable(ServiceError):
    """UNAVAILABLE (try again, maybe elsewhere) with RetryInfo."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = "UNAVAILABLE"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float = 1.0,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, reason=reason, metadata=metadata)

    def details(self) -> list[object]:
        return [retry_info(self.retry_after)]


class DeadlineExceeded(ServiceError):
    """DEADLINE_EXCEEDED: the work could not finish within the caller's deadline."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED
    reason = "DEADLINE_EXCEEDED"


class Unimplemented(ServiceError):
    """UNIMPLEMENTED: the RPC is in the contract but not served yet."""

    code = grpc.StatusCode.UNIMPLEMENTED
    reason = "UNIMPLEMENTED"


def retry_info(seconds: float) -> error_details_pb2.RetryInfo:
    """RetryInfo with a delay rounded up to the millisecond (a client that waits that long is not early)."""
    millis = max(0, math.ceil(seconds * 1000))
    return error_details_pb2.RetryInfo(
        retry_delay=duration_pb2.Duration(seconds=millis // 1000, nanos=(millis % 1000) * 1_000_000)
    )


def build_status(
    code: grpc.StatusCode,
    message: str,
    *,
    reason: str,
    domain: str,
    metadata: Mapping[str, str] | None = None,
    details: Iterable[object] = (),
) -> grpc.Status:
    """A `grpc.Status` whose trailers carry google.rpc.Status with ErrorInfo first, then `details`."""
    status = status_pb2.Status(code=_CODE_NUMBER[code], message=message)
    info = error_details_pb2.ErrorInfo(reason=reason, domain=domain, metadata=dict(metadata or {}))
    status.details.add().Pack(info)
    for detail in details:
        status.details.add().Pack(detail)
    return rpc_status.to_status(status)


def domain_of(service: str) -> str:
    """The ErrorInfo domain of a service: `limiter` → `limiter.foundation`."""
    return f"{service}.foundation"


_CODE_NUMBER: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: code_pb2.OK,
    grpc.StatusCode.CANCELLED: code_pb2.CANCELLED,
    grpc.StatusCode.UNKNOWN: code_pb2.UNKNOWN,
    grpc.StatusCode.INVALID_ARGUMENT: code_pb2.INVALID_ARGUMENT,
    grpc.StatusCode.DEADLINE_EXCEEDED: code_pb2.DEADLINE_EXCEEDED,
    grpc.StatusCode.NOT_FOUND: code_pb2.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: code_pb2.ALREADY_EXISTS,
    grpc.StatusCode.PERMISSION_DENIED: code_pb2.PERMISSION_DENIED,
    grpc.StatusCode.RESOURCE_EXHAUSTED: code_pb2.RESOURCE_EXHAUSTED,
    grpc.StatusCode.FAILED_PRECONDITION: code_pb2.FAILED_PRECONDITION,
    grpc.StatusCode.ABORTED: code_pb2.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE: code_pb2.OUT_OF_RANGE,
    grpc.StatusCode.UNIMPLEMENTED: code_pb2.UNIMPLEMENTED,
    grpc.StatusCode.INTERNAL: code_pb2.INTERNAL,
    grpc.StatusCode.UNAVAILABLE: code_pb2.UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS: code_pb2.DATA_LOSS,
    grpc.StatusCode.UNAUTHENTICATED: code_pb2.UNAUTHENTICATED,
}
