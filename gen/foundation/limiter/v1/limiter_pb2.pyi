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

class Limiter(_message.Message):
    __slots__ = ("name", "algorithm", "limit", "period", "burst", "failure_mode", "shadow", "lease_ttl", "description", "create_time", "update_time")
    class Algorithm(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ALGORITHM_UNSPECIFIED: _ClassVar[Limiter.Algorithm]
        ALGORITHM_GCRA: _ClassVar[Limiter.Algorithm]
        ALGORITHM_FIXED_WINDOW: _ClassVar[Limiter.Algorithm]
        ALGORITHM_SLIDING_WINDOW: _ClassVar[Limiter.Algorithm]
        ALGORITHM_CONCURRENCY: _ClassVar[Limiter.Algorithm]
    ALGORITHM_UNSPECIFIED: Limiter.Algorithm
    ALGORITHM_GCRA: Limiter.Algorithm
    ALGORITHM_FIXED_WINDOW: Limiter.Algorithm
    ALGORITHM_SLIDING_WINDOW: Limiter.Algorithm
    ALGORITHM_CONCURRENCY: Limiter.Algorithm
    class FailureMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        FAILURE_MODE_UNSPECIFIED: _ClassVar[Limiter.FailureMode]
        FAILURE_MODE_FAIL_OPEN: _ClassVar[Limiter.FailureMode]
        FAILURE_MODE_FAIL_CLOSED: _ClassVar[Limiter.FailureMode]
    FAILURE_MODE_UNSPECIFIED: Limiter.FailureMode
    FAILURE_MODE_FAIL_OPEN: Limiter.FailureMode
    FAILURE_MODE_FAIL_CLOSED: Limiter.FailureMode
    NAME_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    BURST_FIELD_NUMBER: _ClassVar[int]
    FAILURE_MODE_FIELD_NUMBER: _ClassVar[int]
    SHADOW_FIELD_NUMBER: _ClassVar[int]
    LEASE_TTL_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    algorithm: Limiter.Algorithm
    limit: int
    period: _duration_pb2.Duration
    burst: int
    failure_mode: Limiter.FailureMode
    shadow: bool
    lease_ttl: _duration_pb2.Duration
    description: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., algorithm: _Optional[_Union[Limiter.Algorithm, str]] = ..., limit: _Optional[int] = ..., period: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., burst: _Optional[int] = ..., failure_mode: _Optional[_Union[Limiter.FailureMode, str]] = ..., shadow: _Optional[bool] = ..., lease_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., description: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateLimiterRequest(_message.Message):
    __slots__ = ("limiter_id", "limiter")
    LIMITER_ID_FIELD_NUMBER: _ClassVar[int]
    LIMITER_FIELD_NUMBER: _ClassVar[int]
    limiter_id: str
    limiter: Limiter
    def __init__(self, limiter_id: _Optional[str] = ..., limiter: _Optional[_Union[Limiter, _Mapping]] = ...) -> None: ...

class CreateLimiterResponse(_message.Message):
    __slots__ = ("limiter",)
    LIMITER_FIELD_NUMBER: _ClassVar[int]
    limiter: Limiter
    def __init__(self, limiter: _Optional[_Union[Limiter, _Mapping]] = ...) -> None: ...

class GetLimiterRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetLimiterResponse(_message.Message):
    __slots__ = ("limiter",)
    LIMITER_FIELD_NUMBER: _ClassVar[int]
    limiter: Limiter
    def __init__(self, limiter: _Optional[_Union[Limiter, _Mapping]] = ...) -> None: ...

class ListLimitersRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListLimitersResponse(_message.Message):
    __slots__ = ("limiters", "next_page_token")
    LIMITERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    limiters: _containers.RepeatedCompositeFieldContainer[Limiter]
    next_page_token: str
    def __init__(self, limiters: _Optional[_Iterable[_Union[Limiter, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateLimiterRequest(_message.Message):
    __slots__ = ("limiter", "update_mask")
    LIMITER_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    limiter: Limiter
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, limiter: _Optional[_Union[Limiter, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateLimiterResponse(_message.Message):
    __slots__ = ("limiter",)
    LIMITER_FIELD_NUMBER: _ClassVar[int]
    limiter: Limiter
    def __init__(self, limiter: _Optional[_Union[Limiter, _Mapping]] = ...) -> None: ...

class DeleteLimiterRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteLimiterResponse(_message.Message):
    __slots__ = ("deleted_keys",)
    DELETED_KEYS_FIELD_NUMBER: _ClassVar[int]
    deleted_keys: int
    def __init__(self, deleted_keys: _Optional[int] = ...) -> None: ...

class CheckRequest(_message.Message):
    __slots__ = ("items", "mode", "dry_run")
    class Mode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        MODE_UNSPECIFIED: _ClassVar[CheckRequest.Mode]
        MODE_ALL_OR_NOTHING: _ClassVar[CheckRequest.Mode]
        MODE_INDEPENDENT: _ClassVar[CheckRequest.Mode]
    MODE_UNSPECIFIED: CheckRequest.Mode
    MODE_ALL_OR_NOTHING: CheckRequest.Mode
    MODE_INDEPENDENT: CheckRequest.Mode
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[CheckItem]
    mode: CheckRequest.Mode
    dry_run: bool
    def __init__(self, items: _Optional[_Iterable[_Union[CheckItem, _Mapping]]] = ..., mode: _Optional[_Union[CheckRequest.Mode, str]] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class CheckItem(_message.Message):
    __slots__ = ("limiter", "key", "cost")
    LIMITER_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    limiter: str
    key: str
    cost: int
    def __init__(self, limiter: _Optional[str] = ..., key: _Optional[str] = ..., cost: _Optional[int] = ...) -> None: ...

class CheckResponse(_message.Message):
    __slots__ = ("allowed", "results", "headers")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    results: _containers.RepeatedCompositeFieldContainer[CheckResult]
    headers: _containers.ScalarMap[str, str]
    def __init__(self, allowed: _Optional[bool] = ..., results: _Optional[_Iterable[_Union[CheckResult, _Mapping]]] = ..., headers: _Optional[_Mapping[str, str]] = ...) -> None: ...

class CheckResult(_message.Message):
    __slots__ = ("allowed", "limit", "remaining", "reset_after", "retry_after", "lease_id", "shadow_denied", "headers")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    RESET_AFTER_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    SHADOW_DENIED_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    limit: int
    remaining: int
    reset_after: _duration_pb2.Duration
    retry_after: _duration_pb2.Duration
    lease_id: str
    shadow_denied: bool
    headers: _containers.ScalarMap[str, str]
    def __init__(self, allowed: _Optional[bool] = ..., limit: _Optional[int] = ..., remaining: _Optional[int] = ..., reset_after: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., retry_after: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., lease_id: _Optional[str] = ..., shadow_denied: _Optional[bool] = ..., headers: _Optional[_Mapping[str, str]] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ("limiter", "key")
    LIMITER_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    limiter: str
    key: str
    def __init__(self, limiter: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("limit", "remaining", "reset_after", "reset_time")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    RESET_AFTER_FIELD_NUMBER: _ClassVar[int]
    RESET_TIME_FIELD_NUMBER: _ClassVar[int]
    limit: int
    remaining: int
    reset_after: _duration_pb2.Duration
    reset_time: _timestamp_pb2.Timestamp
    def __init__(self, limit: _Optional[int] = ..., remaining: _Optional[int] = ..., reset_after: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., reset_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ResetRequest(_message.Message):
    __slots__ = ("limiter", "key")
    LIMITER_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    limiter: str
    key: str
    def __init__(self, limiter: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class ResetResponse(_message.Message):
    __slots__ = ("existed",)
    EXISTED_FIELD_NUMBER: _ClassVar[int]
    existed: bool
    def __init__(self, existed: _Optional[bool] = ...) -> None: ...

class ReleaseRequest(_message.Message):
    __slots__ = ("lease_id",)
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    def __init__(self, lease_id: _Optional[str] = ...) -> None: ...

class ReleaseResponse(_message.Message):
    __slots__ = ("released",)
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    released: bool
    def __init__(self, released: _Optional[bool] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ("limiter",)
    LIMITER_FIELD_NUMBER: _ClassVar[int]
    limiter: str
    def __init__(self, limiter: _Optional[str] = ...) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("total", "limiters")
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    LIMITERS_FIELD_NUMBER: _ClassVar[int]
    total: LimiterStats
    limiters: _containers.RepeatedCompositeFieldContainer[LimiterStats]
    def __init__(self, total: _Optional[_Union[LimiterStats, _Mapping]] = ..., limiters: _Optional[_Iterable[_Union[LimiterStats, _Mapping]]] = ...) -> None: ...

class LimiterStats(_message.Message):
    __slots__ = ("limiter", "checks", "allowed", "denied", "shadow_denied", "active_keys")
    LIMITER_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    DENIED_FIELD_NUMBER: _ClassVar[int]
    SHADOW_DENIED_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_KEYS_FIELD_NUMBER: _ClassVar[int]
    limiter: str
    checks: int
    allowed: int
    denied: int
    shadow_denied: int
    active_keys: int
    def __init__(self, limiter: _Optional[str] = ..., checks: _Optional[int] = ..., allowed: _Optional[int] = ..., denied: _Optional[int] = ..., shadow_denied: _Optional[int] = ..., active_keys: _Optional[int] = ...) -> None: ...
