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

class Condition(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONDITION_UNSPECIFIED: _ClassVar[Condition]
    CONDITION_ALWAYS: _ClassVar[Condition]
    CONDITION_IF_ABSENT: _ClassVar[Condition]
    CONDITION_IF_PRESENT: _ClassVar[Condition]
    CONDITION_IF_VERSION: _ClassVar[Condition]
CONDITION_UNSPECIFIED: Condition
CONDITION_ALWAYS: Condition
CONDITION_IF_ABSENT: Condition
CONDITION_IF_PRESENT: Condition
CONDITION_IF_VERSION: Condition

class Cache(_message.Message):
    __slots__ = ("name", "max_entries", "max_value_bytes", "default_ttl", "max_ttl", "eviction_policy", "description", "create_time", "update_time")
    class EvictionPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        EVICTION_POLICY_UNSPECIFIED: _ClassVar[Cache.EvictionPolicy]
        EVICTION_POLICY_LRU: _ClassVar[Cache.EvictionPolicy]
        EVICTION_POLICY_VOLATILE_TTL: _ClassVar[Cache.EvictionPolicy]
        EVICTION_POLICY_NO_EVICTION: _ClassVar[Cache.EvictionPolicy]
    EVICTION_POLICY_UNSPECIFIED: Cache.EvictionPolicy
    EVICTION_POLICY_LRU: Cache.EvictionPolicy
    EVICTION_POLICY_VOLATILE_TTL: Cache.EvictionPolicy
    EVICTION_POLICY_NO_EVICTION: Cache.EvictionPolicy
    NAME_FIELD_NUMBER: _ClassVar[int]
    MAX_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    MAX_VALUE_BYTES_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_TTL_FIELD_NUMBER: _ClassVar[int]
    MAX_TTL_FIELD_NUMBER: _ClassVar[int]
    EVICTION_POLICY_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    max_entries: int
    max_value_bytes: int
    default_ttl: _duration_pb2.Duration
    max_ttl: _duration_pb2.Duration
    eviction_policy: Cache.EvictionPolicy
    description: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., max_entries: _Optional[int] = ..., max_value_bytes: _Optional[int] = ..., default_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., eviction_policy: _Optional[_Union[Cache.EvictionPolicy, str]] = ..., description: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Hit(_message.Message):
    __slots__ = ("value", "version", "ttl_remaining")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TTL_REMAINING_FIELD_NUMBER: _ClassVar[int]
    value: bytes
    version: int
    ttl_remaining: _duration_pb2.Duration
    def __init__(self, value: _Optional[bytes] = ..., version: _Optional[int] = ..., ttl_remaining: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class Miss(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateCacheRequest(_message.Message):
    __slots__ = ("cache_id", "cache")
    CACHE_ID_FIELD_NUMBER: _ClassVar[int]
    CACHE_FIELD_NUMBER: _ClassVar[int]
    cache_id: str
    cache: Cache
    def __init__(self, cache_id: _Optional[str] = ..., cache: _Optional[_Union[Cache, _Mapping]] = ...) -> None: ...

class CreateCacheResponse(_message.Message):
    __slots__ = ("cache",)
    CACHE_FIELD_NUMBER: _ClassVar[int]
    cache: Cache
    def __init__(self, cache: _Optional[_Union[Cache, _Mapping]] = ...) -> None: ...

class GetCacheRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetCacheResponse(_message.Message):
    __slots__ = ("cache",)
    CACHE_FIELD_NUMBER: _ClassVar[int]
    cache: Cache
    def __init__(self, cache: _Optional[_Union[Cache, _Mapping]] = ...) -> None: ...

class ListCachesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCachesResponse(_message.Message):
    __slots__ = ("caches", "next_page_token")
    CACHES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    caches: _containers.RepeatedCompositeFieldContainer[Cache]
    next_page_token: str
    def __init__(self, caches: _Optional[_Iterable[_Union[Cache, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateCacheRequest(_message.Message):
    __slots__ = ("cache", "update_mask")
    CACHE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    cache: Cache
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, cache: _Optional[_Union[Cache, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateCacheResponse(_message.Message):
    __slots__ = ("cache",)
    CACHE_FIELD_NUMBER: _ClassVar[int]
    cache: Cache
    def __init__(self, cache: _Optional[_Union[Cache, _Mapping]] = ...) -> None: ...

class DeleteCacheRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteCacheResponse(_message.Message):
    __slots__ = ("deleted_entries",)
    DELETED_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    deleted_entries: int
    def __init__(self, deleted_entries: _Optional[int] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("cache", "key")
    CACHE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    cache: str
    key: str
    def __init__(self, cache: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("hit", "miss")
    HIT_FIELD_NUMBER: _ClassVar[int]
    MISS_FIELD_NUMBER: _ClassVar[int]
    hit: Hit
    miss: Miss
    def __init__(self, hit: _Optional[_Union[Hit, _Mapping]] = ..., miss: _Optional[_Union[Miss, _Mapping]] = ...) -> None: ...

class GetManyRequest(_message.Message):
    __slots__ = ("cache", "keys")
    CACHE_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    cache: str
    keys: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, cache: _Optional[str] = ..., keys: _Optional[_Iterable[str]] = ...) -> None: ...

class GetManyResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[GetManyResult]
    def __init__(self, results: _Optional[_Iterable[_Union[GetManyResult, _Mapping]]] = ...) -> None: ...

class GetManyResult(_message.Message):
    __slots__ = ("key", "hit", "miss")
    KEY_FIELD_NUMBER: _ClassVar[int]
    HIT_FIELD_NUMBER: _ClassVar[int]
    MISS_FIELD_NUMBER: _ClassVar[int]
    key: str
    hit: Hit
    miss: Miss
    def __init__(self, key: _Optional[str] = ..., hit: _Optional[_Union[Hit, _Mapping]] = ..., miss: _Optional[_Union[Miss, _Mapping]] = ...) -> None: ...

class SetRequest(_message.Message):
    __slots__ = ("cache", "key", "value", "ttl", "keep_ttl", "condition", "expected_version", "return_previous")
    CACHE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    KEEP_TTL_FIELD_NUMBER: _ClassVar[int]
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    RETURN_PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    cache: str
    key: str
    value: bytes
    ttl: _duration_pb2.Duration
    keep_ttl: bool
    condition: Condition
    expected_version: int
    return_previous: bool
    def __init__(self, cache: _Optional[str] = ..., key: _Optional[str] = ..., value: _Optional[bytes] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., keep_ttl: _Optional[bool] = ..., condition: _Optional[_Union[Condition, str]] = ..., expected_version: _Optional[int] = ..., return_previous: _Optional[bool] = ...) -> None: ...

class SetResponse(_message.Message):
    __slots__ = ("stored", "version", "previous")
    STORED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    stored: bool
    version: int
    previous: Hit
    def __init__(self, stored: _Optional[bool] = ..., version: _Optional[int] = ..., previous: _Optional[_Union[Hit, _Mapping]] = ...) -> None: ...

class SetItem(_message.Message):
    __slots__ = ("key", "value", "ttl", "keep_ttl", "condition", "expected_version")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    KEEP_TTL_FIELD_NUMBER: _ClassVar[int]
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: bytes
    ttl: _duration_pb2.Duration
    keep_ttl: bool
    condition: Condition
    expected_version: int
    def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., keep_ttl: _Optional[bool] = ..., condition: _Optional[_Union[Condition, str]] = ..., expected_version: _Optional[int] = ...) -> None: ...

class SetManyRequest(_message.Message):
    __slots__ = ("cache", "items")
    CACHE_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    cache: str
    items: _containers.RepeatedCompositeFieldContainer[SetItem]
    def __init__(self, cache: _Optional[str] = ..., items: _Optional[_Iterable[_Union[SetItem, _Mapping]]] = ...) -> None: ...

class SetManyResponse(_message.Message):
    __slots__ = ("stored", "results")
    STORED_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    stored: bool
    results: _containers.RepeatedCompositeFieldContainer[SetResult]
    def __init__(self, stored: _Optional[bool] = ..., results: _Optional[_Iterable[_Union[SetResult, _Mapping]]] = ...) -> None: ...

class SetResult(_message.Message):
    __slots__ = ("key", "condition_met", "version")
    KEY_FIELD_NUMBER: _ClassVar[int]
    CONDITION_MET_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    key: str
    condition_met: bool
    version: int
    def __init__(self, key: _Optional[str] = ..., condition_met: _Optional[bool] = ..., version: _Optional[int] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("cache", "key", "expected_version")
    CACHE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    cache: str
    key: str
    expected_version: int
    def __init__(self, cache: _Optional[str] = ..., key: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("outcome", "version")
    class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OUTCOME_UNSPECIFIED: _ClassVar[DeleteResponse.Outcome]
        OUTCOME_DELETED: _ClassVar[DeleteResponse.Outcome]
        OUTCOME_NOT_FOUND: _ClassVar[DeleteResponse.Outcome]
        OUTCOME_VERSION_MISMATCH: _ClassVar[DeleteResponse.Outcome]
    OUTCOME_UNSPECIFIED: DeleteResponse.Outcome
    OUTCOME_DELETED: DeleteResponse.Outcome
    OUTCOME_NOT_FOUND: DeleteResponse.Outcome
    OUTCOME_VERSION_MISMATCH: DeleteResponse.Outcome
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    outcome: DeleteResponse.Outcome
    version: int
    def __init__(self, outcome: _Optional[_Union[DeleteResponse.Outcome, str]] = ..., version: _Optional[int] = ...) -> None: ...

class DeleteManyRequest(_message.Message):
    __slots__ = ("cache", "keys")
    CACHE_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    cache: str
    keys: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, cache: _Optional[str] = ..., keys: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteManyResponse(_message.Message):
    __slots__ = ("deleted_count", "results")
    DELETED_COUNT_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    deleted_count: int
    results: _containers.RepeatedCompositeFieldContainer[DeleteManyResult]
    def __init__(self, deleted_count: _Optional[int] = ..., results: _Optional[_Iterable[_Union[DeleteManyResult, _Mapping]]] = ...) -> None: ...

class DeleteManyResult(_message.Message):
    __slots__ = ("key", "deleted")
    KEY_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    key: str
    deleted: bool
    def __init__(self, key: _Optional[str] = ..., deleted: _Optional[bool] = ...) -> None: ...

class IncrementRequest(_message.Message):
    __slots__ = ("cache", "key", "delta", "initial", "ttl_for_new")
    CACHE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    INITIAL_FIELD_NUMBER: _ClassVar[int]
    TTL_FOR_NEW_FIELD_NUMBER: _ClassVar[int]
    cache: str
    key: str
    delta: int
    initial: int
    ttl_for_new: _duration_pb2.Duration
    def __init__(self, cache: _Optional[str] = ..., key: _Optional[str] = ..., delta: _Optional[int] = ..., initial: _Optional[int] = ..., ttl_for_new: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class IncrementResponse(_message.Message):
    __slots__ = ("value", "version", "created")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    value: int
    version: int
    created: bool
    def __init__(self, value: _Optional[int] = ..., version: _Optional[int] = ..., created: _Optional[bool] = ...) -> None: ...

class UpdateTtlRequest(_message.Message):
    __slots__ = ("cache", "key", "ttl", "persist", "only_if")
    class OnlyIf(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ONLY_IF_UNSPECIFIED: _ClassVar[UpdateTtlRequest.OnlyIf]
        ONLY_IF_ANY: _ClassVar[UpdateTtlRequest.OnlyIf]
        ONLY_IF_INCREASE: _ClassVar[UpdateTtlRequest.OnlyIf]
        ONLY_IF_DECREASE: _ClassVar[UpdateTtlRequest.OnlyIf]
    ONLY_IF_UNSPECIFIED: UpdateTtlRequest.OnlyIf
    ONLY_IF_ANY: UpdateTtlRequest.OnlyIf
    ONLY_IF_INCREASE: UpdateTtlRequest.OnlyIf
    ONLY_IF_DECREASE: UpdateTtlRequest.OnlyIf
    CACHE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    PERSIST_FIELD_NUMBER: _ClassVar[int]
    ONLY_IF_FIELD_NUMBER: _ClassVar[int]
    cache: str
    key: str
    ttl: _duration_pb2.Duration
    persist: bool
    only_if: UpdateTtlRequest.OnlyIf
    def __init__(self, cache: _Optional[str] = ..., key: _Optional[str] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., persist: _Optional[bool] = ..., only_if: _Optional[_Union[UpdateTtlRequest.OnlyIf, str]] = ...) -> None: ...

class UpdateTtlResponse(_message.Message):
    __slots__ = ("outcome", "ttl_remaining")
    class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OUTCOME_UNSPECIFIED: _ClassVar[UpdateTtlResponse.Outcome]
        OUTCOME_UPDATED: _ClassVar[UpdateTtlResponse.Outcome]
        OUTCOME_MISSING: _ClassVar[UpdateTtlResponse.Outcome]
        OUTCOME_NOT_UPDATED: _ClassVar[UpdateTtlResponse.Outcome]
    OUTCOME_UNSPECIFIED: UpdateTtlResponse.Outcome
    OUTCOME_UPDATED: UpdateTtlResponse.Outcome
    OUTCOME_MISSING: UpdateTtlResponse.Outcome
    OUTCOME_NOT_UPDATED: UpdateTtlResponse.Outcome
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    TTL_REMAINING_FIELD_NUMBER: _ClassVar[int]
    outcome: UpdateTtlResponse.Outcome
    ttl_remaining: _duration_pb2.Duration
    def __init__(self, outcome: _Optional[_Union[UpdateTtlResponse.Outcome, str]] = ..., ttl_remaining: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ClearRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ClearResponse(_message.Message):
    __slots__ = ("deleted_entries",)
    DELETED_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    deleted_entries: int
    def __init__(self, deleted_entries: _Optional[int] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ("cache",)
    CACHE_FIELD_NUMBER: _ClassVar[int]
    cache: str
    def __init__(self, cache: _Optional[str] = ...) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("total", "caches")
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    CACHES_FIELD_NUMBER: _ClassVar[int]
    total: CacheStats
    caches: _containers.RepeatedCompositeFieldContainer[CacheStats]
    def __init__(self, total: _Optional[_Union[CacheStats, _Mapping]] = ..., caches: _Optional[_Iterable[_Union[CacheStats, _Mapping]]] = ...) -> None: ...

class CacheStats(_message.Message):
    __slots__ = ("cache", "entries", "hits", "misses", "hit_ratio", "sets", "deletes", "evictions", "expirations")
    CACHE_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    MISSES_FIELD_NUMBER: _ClassVar[int]
    HIT_RATIO_FIELD_NUMBER: _ClassVar[int]
    SETS_FIELD_NUMBER: _ClassVar[int]
    DELETES_FIELD_NUMBER: _ClassVar[int]
    EVICTIONS_FIELD_NUMBER: _ClassVar[int]
    EXPIRATIONS_FIELD_NUMBER: _ClassVar[int]
    cache: str
    entries: int
    hits: int
    misses: int
    hit_ratio: float
    sets: int
    deletes: int
    evictions: int
    expirations: int
    def __init__(self, cache: _Optional[str] = ..., entries: _Optional[int] = ..., hits: _Optional[int] = ..., misses: _Optional[int] = ..., hit_ratio: _Optional[float] = ..., sets: _Optional[int] = ..., deletes: _Optional[int] = ..., evictions: _Optional[int] = ..., expirations: _Optional[int] = ...) -> None: ...
