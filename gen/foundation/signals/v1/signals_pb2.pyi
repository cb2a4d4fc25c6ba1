import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.api import resource_pb2 as _resource_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import status_pb2 as _status_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Event(_message.Message):
    __slots__ = ("id", "source", "type", "spec_version", "subject", "time", "data_content_type", "data_schema", "data", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SPEC_VERSION_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    DATA_CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    id: str
    source: str
    type: str
    spec_version: str
    subject: str
    time: _timestamp_pb2.Timestamp
    data_content_type: str
    data_schema: str
    data: bytes
    attributes: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., source: _Optional[str] = ..., type: _Optional[str] = ..., spec_version: _Optional[str] = ..., subject: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., data_content_type: _Optional[str] = ..., data_schema: _Optional[str] = ..., data: _Optional[bytes] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Subscription(_message.Message):
    __slots__ = ("name", "patterns", "max_pending", "warn_pending", "overflow_policy", "ack_deadline", "max_delivery_attempts", "dead_letter", "description", "create_time", "update_time")
    class OverflowPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OVERFLOW_POLICY_UNSPECIFIED: _ClassVar[Subscription.OverflowPolicy]
        OVERFLOW_POLICY_DROP_NEWEST: _ClassVar[Subscription.OverflowPolicy]
        OVERFLOW_POLICY_DROP_OLDEST: _ClassVar[Subscription.OverflowPolicy]
        OVERFLOW_POLICY_DISCONNECT: _ClassVar[Subscription.OverflowPolicy]
        OVERFLOW_POLICY_BLOCK: _ClassVar[Subscription.OverflowPolicy]
    OVERFLOW_POLICY_UNSPECIFIED: Subscription.OverflowPolicy
    OVERFLOW_POLICY_DROP_NEWEST: Subscription.OverflowPolicy
    OVERFLOW_POLICY_DROP_OLDEST: Subscription.OverflowPolicy
    OVERFLOW_POLICY_DISCONNECT: Subscription.OverflowPolicy
    OVERFLOW_POLICY_BLOCK: Subscription.OverflowPolicy
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATTERNS_FIELD_NUMBER: _ClassVar[int]
    MAX_PENDING_FIELD_NUMBER: _ClassVar[int]
    WARN_PENDING_FIELD_NUMBER: _ClassVar[int]
    OVERFLOW_POLICY_FIELD_NUMBER: _ClassVar[int]
    ACK_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    MAX_DELIVERY_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    patterns: _containers.RepeatedScalarFieldContainer[str]
    max_pending: int
    warn_pending: int
    overflow_policy: Subscription.OverflowPolicy
    ack_deadline: _duration_pb2.Duration
    max_delivery_attempts: int
    dead_letter: str
    description: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., patterns: _Optional[_Iterable[str]] = ..., max_pending: _Optional[int] = ..., warn_pending: _Optional[int] = ..., overflow_policy: _Optional[_Union[Subscription.OverflowPolicy, str]] = ..., ack_deadline: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_delivery_attempts: _Optional[int] = ..., dead_letter: _Optional[str] = ..., description: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PublishRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...

class PublishResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[PublishResult]
    def __init__(self, results: _Optional[_Iterable[_Union[PublishResult, _Mapping]]] = ...) -> None: ...

class PublishResult(_message.Message):
    __slots__ = ("id", "sequence", "duplicate", "error")
    ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    id: str
    sequence: int
    duplicate: bool
    error: _status_pb2.Status
    def __init__(self, id: _Optional[str] = ..., sequence: _Optional[int] = ..., duplicate: _Optional[bool] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ...) -> None: ...

class PublishStreamRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...

class PublishStreamResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[PublishResult]
    def __init__(self, results: _Optional[_Iterable[_Union[PublishResult, _Mapping]]] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("subscription", "patterns", "max_outstanding", "max_pending", "overflow_policy")
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PATTERNS_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTSTANDING_FIELD_NUMBER: _ClassVar[int]
    MAX_PENDING_FIELD_NUMBER: _ClassVar[int]
    OVERFLOW_POLICY_FIELD_NUMBER: _ClassVar[int]
    subscription: str
    patterns: _containers.RepeatedScalarFieldContainer[str]
    max_outstanding: int
    max_pending: int
    overflow_policy: Subscription.OverflowPolicy
    def __init__(self, subscription: _Optional[str] = ..., patterns: _Optional[_Iterable[str]] = ..., max_outstanding: _Optional[int] = ..., max_pending: _Optional[int] = ..., overflow_policy: _Optional[_Union[Subscription.OverflowPolicy, str]] = ...) -> None: ...

class SubscribeResponse(_message.Message):
    __slots__ = ("deliveries",)
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[Delivery]
    def __init__(self, deliveries: _Optional[_Iterable[_Union[Delivery, _Mapping]]] = ...) -> None: ...

class Delivery(_message.Message):
    __slots__ = ("event", "sequence", "ack_id", "delivery_attempt")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ACK_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    event: Event
    sequence: int
    ack_id: str
    delivery_attempt: int
    def __init__(self, event: _Optional[_Union[Event, _Mapping]] = ..., sequence: _Optional[int] = ..., ack_id: _Optional[str] = ..., delivery_attempt: _Optional[int] = ...) -> None: ...

class AckRequest(_message.Message):
    __slots__ = ("subscription", "ack_ids")
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ACK_IDS_FIELD_NUMBER: _ClassVar[int]
    subscription: str
    ack_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, subscription: _Optional[str] = ..., ack_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class AckResponse(_message.Message):
    __slots__ = ("acked", "expired_ack_ids")
    ACKED_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_ACK_IDS_FIELD_NUMBER: _ClassVar[int]
    acked: int
    expired_ack_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, acked: _Optional[int] = ..., expired_ack_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ModifyAckDeadlineRequest(_message.Message):
    __slots__ = ("subscription", "ack_ids", "ack_deadline")
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ACK_IDS_FIELD_NUMBER: _ClassVar[int]
    ACK_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    subscription: str
    ack_ids: _containers.RepeatedScalarFieldContainer[str]
    ack_deadline: _duration_pb2.Duration
    def __init__(self, subscription: _Optional[str] = ..., ack_ids: _Optional[_Iterable[str]] = ..., ack_deadline: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ModifyAckDeadlineResponse(_message.Message):
    __slots__ = ("modified", "expired_ack_ids")
    MODIFIED_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_ACK_IDS_FIELD_NUMBER: _ClassVar[int]
    modified: int
    expired_ack_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, modified: _Optional[int] = ..., expired_ack_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateSubscriptionRequest(_message.Message):
    __slots__ = ("subscription_id", "subscription")
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    subscription_id: str
    subscription: Subscription
    def __init__(self, subscription_id: _Optional[str] = ..., subscription: _Optional[_Union[Subscription, _Mapping]] = ...) -> None: ...

class CreateSubscriptionResponse(_message.Message):
    __slots__ = ("subscription",)
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    subscription: Subscription
    def __init__(self, subscription: _Optional[_Union[Subscription, _Mapping]] = ...) -> None: ...

class GetSubscriptionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetSubscriptionResponse(_message.Message):
    __slots__ = ("subscription",)
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    subscription: Subscription
    def __init__(self, subscription: _Optional[_Union[Subscription, _Mapping]] = ...) -> None: ...

class ListSubscriptionsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSubscriptionsResponse(_message.Message):
    __slots__ = ("subscriptions", "next_page_token")
    SUBSCRIPTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    subscriptions: _containers.RepeatedCompositeFieldContainer[Subscription]
    next_page_token: str
    def __init__(self, subscriptions: _Optional[_Iterable[_Union[Subscription, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateSubscriptionRequest(_message.Message):
    __slots__ = ("subscription", "update_mask")
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    subscription: Subscription
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, subscription: _Optional[_Union[Subscription, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateSubscriptionResponse(_message.Message):
    __slots__ = ("subscription",)
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    subscription: Subscription
    def __init__(self, subscription: _Optional[_Union[Subscription, _Mapping]] = ...) -> None: ...

class DeleteSubscriptionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteSubscriptionResponse(_message.Message):
    __slots__ = ("discarded_pending",)
    DISCARDED_PENDING_FIELD_NUMBER: _ClassVar[int]
    discarded_pending: int
    def __init__(self, discarded_pending: _Optional[int] = ...) -> None: ...

class SeekRequest(_message.Message):
    __slots__ = ("subscription", "time", "sequence")
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    subscription: str
    time: _timestamp_pb2.Timestamp
    sequence: int
    def __init__(self, subscription: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sequence: _Optional[int] = ...) -> None: ...

class SeekResponse(_message.Message):
    __slots__ = ("start_sequence", "replayed")
    START_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    start_sequence: int
    replayed: int
    def __init__(self, start_sequence: _Optional[int] = ..., replayed: _Optional[int] = ...) -> None: ...

class GetSubscriptionStatsRequest(_message.Message):
    __slots__ = ("subscription",)
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    subscription: str
    def __init__(self, subscription: _Optional[str] = ...) -> None: ...

class GetSubscriptionStatsResponse(_message.Message):
    __slots__ = ("stats",)
    STATS_FIELD_NUMBER: _ClassVar[int]
    stats: SubscriptionStats
    def __init__(self, stats: _Optional[_Union[SubscriptionStats, _Mapping]] = ...) -> None: ...

class SubscriptionStats(_message.Message):
    __slots__ = ("subscription", "pending", "outstanding", "backpressure", "backpressure_crossings", "matched", "delivered", "acked", "redelivered", "dropped_newest", "dropped_oldest", "dead_lettered", "dropped_max_attempts", "disconnects", "blocked", "consumers", "oldest_pending_sequence")
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    OUTSTANDING_FIELD_NUMBER: _ClassVar[int]
    BACKPRESSURE_FIELD_NUMBER: _ClassVar[int]
    BACKPRESSURE_CROSSINGS_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_FIELD_NUMBER: _ClassVar[int]
    ACKED_FIELD_NUMBER: _ClassVar[int]
    REDELIVERED_FIELD_NUMBER: _ClassVar[int]
    DROPPED_NEWEST_FIELD_NUMBER: _ClassVar[int]
    DROPPED_OLDEST_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERED_FIELD_NUMBER: _ClassVar[int]
    DROPPED_MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    DISCONNECTS_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_FIELD_NUMBER: _ClassVar[int]
    CONSUMERS_FIELD_NUMBER: _ClassVar[int]
    OLDEST_PENDING_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    subscription: str
    pending: int
    outstanding: int
    backpressure: bool
    backpressure_crossings: int
    matched: int
    delivered: int
    acked: int
    redelivered: int
    dropped_newest: int
    dropped_oldest: int
    dead_lettered: int
    dropped_max_attempts: int
    disconnects: int
    blocked: int
    consumers: int
    oldest_pending_sequence: int
    def __init__(self, subscription: _Optional[str] = ..., pending: _Optional[int] = ..., outstanding: _Optional[int] = ..., backpressure: _Optional[bool] = ..., backpressure_crossings: _Optional[int] = ..., matched: _Optional[int] = ..., delivered: _Optional[int] = ..., acked: _Optional[int] = ..., redelivered: _Optional[int] = ..., dropped_newest: _Optional[int] = ..., dropped_oldest: _Optional[int] = ..., dead_lettered: _Optional[int] = ..., dropped_max_attempts: _Optional[int] = ..., disconnects: _Optional[int] = ..., blocked: _Optional[int] = ..., consumers: _Optional[int] = ..., oldest_pending_sequence: _Optional[int] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("published", "duplicates", "delivered", "acked", "redelivered", "dropped_newest", "dropped_oldest", "dead_lettered", "dropped_max_attempts", "disconnects", "blocked", "subscriptions", "ephemeral_subscriptions", "streams", "retained_events", "last_sequence", "oldest_retained_time")
    PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_FIELD_NUMBER: _ClassVar[int]
    ACKED_FIELD_NUMBER: _ClassVar[int]
    REDELIVERED_FIELD_NUMBER: _ClassVar[int]
    DROPPED_NEWEST_FIELD_NUMBER: _ClassVar[int]
    DROPPED_OLDEST_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERED_FIELD_NUMBER: _ClassVar[int]
    DROPPED_MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    DISCONNECTS_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTIONS_FIELD_NUMBER: _ClassVar[int]
    EPHEMERAL_SUBSCRIPTIONS_FIELD_NUMBER: _ClassVar[int]
    STREAMS_FIELD_NUMBER: _ClassVar[int]
    RETAINED_EVENTS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    OLDEST_RETAINED_TIME_FIELD_NUMBER: _ClassVar[int]
    published: int
    duplicates: int
    delivered: int
    acked: int
    redelivered: int
    dropped_newest: int
    dropped_oldest: int
    dead_lettered: int
    dropped_max_attempts: int
    disconnects: int
    blocked: int
    subscriptions: int
    ephemeral_subscriptions: int
    streams: int
    retained_events: int
    last_sequence: int
    oldest_retained_time: _timestamp_pb2.Timestamp
    def __init__(self, published: _Optional[int] = ..., duplicates: _Optional[int] = ..., delivered: _Optional[int] = ..., acked: _Optional[int] = ..., redelivered: _Optional[int] = ..., dropped_newest: _Optional[int] = ..., dropped_oldest: _Optional[int] = ..., dead_lettered: _Optional[int] = ..., dropped_max_attempts: _Optional[int] = ..., disconnects: _Optional[int] = ..., blocked: _Optional[int] = ..., subscriptions: _Optional[int] = ..., ephemeral_subscriptions: _Optional[int] = ..., streams: _Optional[int] = ..., retained_events: _Optional[int] = ..., last_sequence: _Optional[int] = ..., oldest_retained_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
