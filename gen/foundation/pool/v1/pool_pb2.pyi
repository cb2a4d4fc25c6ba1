import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.api import resource_pb2 as _resource_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CircuitState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CIRCUIT_STATE_UNSPECIFIED: _ClassVar[CircuitState]
    CIRCUIT_STATE_CLOSED: _ClassVar[CircuitState]
    CIRCUIT_STATE_OPEN: _ClassVar[CircuitState]
    CIRCUIT_STATE_HALF_OPEN: _ClassVar[CircuitState]
    CIRCUIT_STATE_DISABLED: _ClassVar[CircuitState]
CIRCUIT_STATE_UNSPECIFIED: CircuitState
CIRCUIT_STATE_CLOSED: CircuitState
CIRCUIT_STATE_OPEN: CircuitState
CIRCUIT_STATE_HALF_OPEN: CircuitState
CIRCUIT_STATE_DISABLED: CircuitState

class Pool(_message.Message):
    __slots__ = ("name", "base_url", "max_connections", "max_keepalive", "keepalive_expiry", "connect_timeout", "timeout", "max_pending", "http2", "headers", "retry", "circuit_breaker", "rate_limit", "max_request_bytes", "max_response_bytes", "description", "create_time", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BASE_URL_FIELD_NUMBER: _ClassVar[int]
    MAX_CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_KEEPALIVE_FIELD_NUMBER: _ClassVar[int]
    KEEPALIVE_EXPIRY_FIELD_NUMBER: _ClassVar[int]
    CONNECT_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    MAX_PENDING_FIELD_NUMBER: _ClassVar[int]
    HTTP2_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    CIRCUIT_BREAKER_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    MAX_REQUEST_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_RESPONSE_BYTES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    base_url: str
    max_connections: int
    max_keepalive: int
    keepalive_expiry: _duration_pb2.Duration
    connect_timeout: _duration_pb2.Duration
    timeout: _duration_pb2.Duration
    max_pending: int
    http2: bool
    headers: _containers.RepeatedCompositeFieldContainer[Header]
    retry: RetryPolicy
    circuit_breaker: CircuitBreaker
    rate_limit: RateLimit
    max_request_bytes: int
    max_response_bytes: int
    description: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., base_url: _Optional[str] = ..., max_connections: _Optional[int] = ..., max_keepalive: _Optional[int] = ..., keepalive_expiry: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., connect_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_pending: _Optional[int] = ..., http2: _Optional[bool] = ..., headers: _Optional[_Iterable[_Union[Header, _Mapping]]] = ..., retry: _Optional[_Union[RetryPolicy, _Mapping]] = ..., circuit_breaker: _Optional[_Union[CircuitBreaker, _Mapping]] = ..., rate_limit: _Optional[_Union[RateLimit, _Mapping]] = ..., max_request_bytes: _Optional[int] = ..., max_response_bytes: _Optional[int] = ..., description: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RetryPolicy(_message.Message):
    __slots__ = ("max_retries", "initial_backoff", "backoff_multiplier", "max_backoff", "total_timeout", "retry_on", "retriable_status_codes", "budget")
    class RetryOn(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        RETRY_ON_UNSPECIFIED: _ClassVar[RetryPolicy.RetryOn]
        RETRY_ON_CONNECT_FAILURE: _ClassVar[RetryPolicy.RetryOn]
        RETRY_ON_RESET: _ClassVar[RetryPolicy.RetryOn]
        RETRY_ON_GATEWAY_ERROR: _ClassVar[RetryPolicy.RetryOn]
    RETRY_ON_UNSPECIFIED: RetryPolicy.RetryOn
    RETRY_ON_CONNECT_FAILURE: RetryPolicy.RetryOn
    RETRY_ON_RESET: RetryPolicy.RetryOn
    RETRY_ON_GATEWAY_ERROR: RetryPolicy.RetryOn
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    INITIAL_BACKOFF_FIELD_NUMBER: _ClassVar[int]
    BACKOFF_MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    MAX_BACKOFF_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    RETRY_ON_FIELD_NUMBER: _ClassVar[int]
    RETRIABLE_STATUS_CODES_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    max_retries: int
    initial_backoff: _duration_pb2.Duration
    backoff_multiplier: float
    max_backoff: _duration_pb2.Duration
    total_timeout: _duration_pb2.Duration
    retry_on: _containers.RepeatedScalarFieldContainer[RetryPolicy.RetryOn]
    retriable_status_codes: _containers.RepeatedScalarFieldContainer[int]
    budget: RetryBudget
    def __init__(self, max_retries: _Optional[int] = ..., initial_backoff: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., backoff_multiplier: _Optional[float] = ..., max_backoff: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., total_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., retry_on: _Optional[_Iterable[_Union[RetryPolicy.RetryOn, str]]] = ..., retriable_status_codes: _Optional[_Iterable[int]] = ..., budget: _Optional[_Union[RetryBudget, _Mapping]] = ...) -> None: ...

class RetryBudget(_message.Message):
    __slots__ = ("budget_percent", "min_retry_concurrency")
    BUDGET_PERCENT_FIELD_NUMBER: _ClassVar[int]
    MIN_RETRY_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    budget_percent: float
    min_retry_concurrency: int
    def __init__(self, budget_percent: _Optional[float] = ..., min_retry_concurrency: _Optional[int] = ...) -> None: ...

class CircuitBreaker(_message.Message):
    __slots__ = ("disabled", "failure_threshold", "reset_timeout", "half_open_max_requests", "success_threshold")
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    FAILURE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    RESET_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    HALF_OPEN_MAX_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    disabled: bool
    failure_threshold: int
    reset_timeout: _duration_pb2.Duration
    half_open_max_requests: int
    success_threshold: int
    def __init__(self, disabled: _Optional[bool] = ..., failure_threshold: _Optional[int] = ..., reset_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., half_open_max_requests: _Optional[int] = ..., success_threshold: _Optional[int] = ...) -> None: ...

class RateLimit(_message.Message):
    __slots__ = ("limiter", "key")
    LIMITER_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    limiter: str
    key: str
    def __init__(self, limiter: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class Header(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class QueryParameter(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class CreatePoolRequest(_message.Message):
    __slots__ = ("pool_id", "pool")
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    pool_id: str
    pool: Pool
    def __init__(self, pool_id: _Optional[str] = ..., pool: _Optional[_Union[Pool, _Mapping]] = ...) -> None: ...

class CreatePoolResponse(_message.Message):
    __slots__ = ("pool",)
    POOL_FIELD_NUMBER: _ClassVar[int]
    pool: Pool
    def __init__(self, pool: _Optional[_Union[Pool, _Mapping]] = ...) -> None: ...

class GetPoolRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetPoolResponse(_message.Message):
    __slots__ = ("pool",)
    POOL_FIELD_NUMBER: _ClassVar[int]
    pool: Pool
    def __init__(self, pool: _Optional[_Union[Pool, _Mapping]] = ...) -> None: ...

class ListPoolsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPoolsResponse(_message.Message):
    __slots__ = ("pools", "next_page_token")
    POOLS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    pools: _containers.RepeatedCompositeFieldContainer[Pool]
    next_page_token: str
    def __init__(self, pools: _Optional[_Iterable[_Union[Pool, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdatePoolRequest(_message.Message):
    __slots__ = ("pool", "update_mask")
    POOL_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    pool: Pool
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, pool: _Optional[_Union[Pool, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdatePoolResponse(_message.Message):
    __slots__ = ("pool",)
    POOL_FIELD_NUMBER: _ClassVar[int]
    pool: Pool
    def __init__(self, pool: _Optional[_Union[Pool, _Mapping]] = ...) -> None: ...

class DeletePoolRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeletePoolResponse(_message.Message):
    __slots__ = ("requests_in_flight",)
    REQUESTS_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    requests_in_flight: int
    def __init__(self, requests_in_flight: _Optional[int] = ...) -> None: ...

class DoRequest(_message.Message):
    __slots__ = ("pool", "method", "path", "query", "headers", "body", "timeout", "idempotency_key")
    POOL_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    pool: str
    method: str
    path: str
    query: _containers.RepeatedCompositeFieldContainer[QueryParameter]
    headers: _containers.RepeatedCompositeFieldContainer[Header]
    body: bytes
    timeout: _duration_pb2.Duration
    idempotency_key: str
    def __init__(self, pool: _Optional[str] = ..., method: _Optional[str] = ..., path: _Optional[str] = ..., query: _Optional[_Iterable[_Union[QueryParameter, _Mapping]]] = ..., headers: _Optional[_Iterable[_Union[Header, _Mapping]]] = ..., body: _Optional[bytes] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class DoResponse(_message.Message):
    __slots__ = ("status", "headers", "body", "attempts", "duration", "http_version")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    HTTP_VERSION_FIELD_NUMBER: _ClassVar[int]
    status: int
    headers: _containers.RepeatedCompositeFieldContainer[Header]
    body: bytes
    attempts: int
    duration: _duration_pb2.Duration
    http_version: str
    def __init__(self, status: _Optional[int] = ..., headers: _Optional[_Iterable[_Union[Header, _Mapping]]] = ..., body: _Optional[bytes] = ..., attempts: _Optional[int] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., http_version: _Optional[str] = ...) -> None: ...

class DoStreamRequest(_message.Message):
    __slots__ = ("pool", "method", "path", "query", "headers", "body", "timeout", "idempotency_key")
    POOL_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    pool: str
    method: str
    path: str
    query: _containers.RepeatedCompositeFieldContainer[QueryParameter]
    headers: _containers.RepeatedCompositeFieldContainer[Header]
    body: bytes
    timeout: _duration_pb2.Duration
    idempotency_key: str
    def __init__(self, pool: _Optional[str] = ..., method: _Optional[str] = ..., path: _Optional[str] = ..., query: _Optional[_Iterable[_Union[QueryParameter, _Mapping]]] = ..., headers: _Optional[_Iterable[_Union[Header, _Mapping]]] = ..., body: _Optional[bytes] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class DoStreamResponse(_message.Message):
    __slots__ = ("head", "chunk", "end")
    HEAD_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    head: ResponseHead
    chunk: bytes
    end: ResponseEnd
    def __init__(self, head: _Optional[_Union[ResponseHead, _Mapping]] = ..., chunk: _Optional[bytes] = ..., end: _Optional[_Union[ResponseEnd, _Mapping]] = ...) -> None: ...

class ResponseHead(_message.Message):
    __slots__ = ("status", "headers", "attempts", "http_version")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    HTTP_VERSION_FIELD_NUMBER: _ClassVar[int]
    status: int
    headers: _containers.RepeatedCompositeFieldContainer[Header]
    attempts: int
    http_version: str
    def __init__(self, status: _Optional[int] = ..., headers: _Optional[_Iterable[_Union[Header, _Mapping]]] = ..., attempts: _Optional[int] = ..., http_version: _Optional[str] = ...) -> None: ...

class ResponseEnd(_message.Message):
    __slots__ = ("body_bytes", "duration")
    BODY_BYTES_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    body_bytes: int
    duration: _duration_pb2.Duration
    def __init__(self, body_bytes: _Optional[int] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class GetPoolStatsRequest(_message.Message):
    __slots__ = ("pool",)
    POOL_FIELD_NUMBER: _ClassVar[int]
    pool: str
    def __init__(self, pool: _Optional[str] = ...) -> None: ...

class GetPoolStatsResponse(_message.Message):
    __slots__ = ("pools",)
    POOLS_FIELD_NUMBER: _ClassVar[int]
    pools: _containers.RepeatedCompositeFieldContainer[PoolStats]
    def __init__(self, pools: _Optional[_Iterable[_Union[PoolStats, _Mapping]]] = ...) -> None: ...

class WatchPoolStatsRequest(_message.Message):
    __slots__ = ("pool", "interval")
    POOL_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    pool: str
    interval: _duration_pb2.Duration
    def __init__(self, pool: _Optional[str] = ..., interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class WatchPoolStatsResponse(_message.Message):
    __slots__ = ("pools", "time")
    POOLS_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    pools: _containers.RepeatedCompositeFieldContainer[PoolStats]
    time: _timestamp_pb2.Timestamp
    def __init__(self, pools: _Optional[_Iterable[_Union[PoolStats, _Mapping]]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PoolStats(_message.Message):
    __slots__ = ("pool", "connections_active", "connections_idle", "connections_opened", "requests_in_flight", "requests_pending", "requests_total", "responses_1xx", "responses_2xx", "responses_3xx", "responses_4xx", "responses_5xx", "connect_failures", "resets", "timeouts", "retries", "retry_budget_exhausted", "pending_overflows", "rate_limited", "circuit_rejected", "cancelled", "circuit_state", "circuit_state_time", "circuit_opened", "circuit_half_opened", "circuit_closed")
    POOL_FIELD_NUMBER: _ClassVar[int]
    CONNECTIONS_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    CONNECTIONS_IDLE_FIELD_NUMBER: _ClassVar[int]
    CONNECTIONS_OPENED_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_PENDING_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    RESPONSES_1XX_FIELD_NUMBER: _ClassVar[int]
    RESPONSES_2XX_FIELD_NUMBER: _ClassVar[int]
    RESPONSES_3XX_FIELD_NUMBER: _ClassVar[int]
    RESPONSES_4XX_FIELD_NUMBER: _ClassVar[int]
    RESPONSES_5XX_FIELD_NUMBER: _ClassVar[int]
    CONNECT_FAILURES_FIELD_NUMBER: _ClassVar[int]
    RESETS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUTS_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    RETRY_BUDGET_EXHAUSTED_FIELD_NUMBER: _ClassVar[int]
    PENDING_OVERFLOWS_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMITED_FIELD_NUMBER: _ClassVar[int]
    CIRCUIT_REJECTED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    CIRCUIT_STATE_FIELD_NUMBER: _ClassVar[int]
    CIRCUIT_STATE_TIME_FIELD_NUMBER: _ClassVar[int]
    CIRCUIT_OPENED_FIELD_NUMBER: _ClassVar[int]
    CIRCUIT_HALF_OPENED_FIELD_NUMBER: _ClassVar[int]
    CIRCUIT_CLOSED_FIELD_NUMBER: _ClassVar[int]
    pool: str
    connections_active: int
    connections_idle: int
    connections_opened: int
    requests_in_flight: int
    requests_pending: int
    requests_total: int
    responses_1xx: int
    responses_2xx: int
    responses_3xx: int
    responses_4xx: int
    responses_5xx: int
    connect_failures: int
    resets: int
    timeouts: int
    retries: int
    retry_budget_exhausted: int
    pending_overflows: int
    rate_limited: int
    circuit_rejected: int
    cancelled: int
    circuit_state: CircuitState
    circuit_state_time: _timestamp_pb2.Timestamp
    circuit_opened: int
    circuit_half_opened: int
    circuit_closed: int
    def __init__(self, pool: _Optional[str] = ..., connections_active: _Optional[int] = ..., connections_idle: _Optional[int] = ..., connections_opened: _Optional[int] = ..., requests_in_flight: _Optional[int] = ..., requests_pending: _Optional[int] = ..., requests_total: _Optional[int] = ..., responses_1xx: _Optional[int] = ..., responses_2xx: _Optional[int] = ..., responses_3xx: _Optional[int] = ..., responses_4xx: _Optional[int] = ..., responses_5xx: _Optional[int] = ..., connect_failures: _Optional[int] = ..., resets: _Optional[int] = ..., timeouts: _Optional[int] = ..., retries: _Optional[int] = ..., retry_budget_exhausted: _Optional[int] = ..., pending_overflows: _Optional[int] = ..., rate_limited: _Optional[int] = ..., circuit_rejected: _Optional[int] = ..., cancelled: _Optional[int] = ..., circuit_state: _Optional[_Union[CircuitState, str]] = ..., circuit_state_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., circuit_opened: _Optional[int] = ..., circuit_half_opened: _Optional[int] = ..., circuit_closed: _Optional[int] = ...) -> None: ...
