"""`foundation.limiter.v1.LimiterService`: protos in, domain calls, protos out. No SQL, no algorithm."""

from __future__ import annotations

from google.protobuf import duration_pb2, timestamp_pb2

from foundation.limiter.v1 import limiter_pb2, limiter_pb2_grpc
from services.limiter import headers, validation
from services.limiter.algorithms import Algorithm, LimiterConfig, ceil_div
from services.limiter.service import Limiters
from services.limiter.validation import Violations


def duration(micros: int) -> duration_pb2.Duration:
    """A Duration of `micros` microseconds."""
    return duration_pb2.Duration(seconds=micros // 1_000_000, nanos=(micros % 1_000_000) * 1000)


def _set_duration(target: duration_pb2.Duration, micros: int) -> None:
    seconds, rest = divmod(micros, 1_000_000)
    if seconds:
        target.seconds = seconds
    target.nanos = rest * 1000


def duration_ms_up(micros: int) -> duration_pb2.Duration:
    """A Duration rounded up to the millisecond."""
    return duration(ceil_div(max(0, micros), 1000) * 1000)


def timestamp(micros: int) -> timestamp_pb2.Timestamp:
    """A Timestamp of `micros` microseconds since the epoch."""
    return timestamp_pb2.Timestamp(seconds=micros // 1_000_000, nanos=(micros % 1_000_000) * 1000)


def to_proto(config: LimiterConfig) -> limiter_pb2.Limiter:
    """A stored limiter as the contract shows it."""
    message = limiter_pb2.Limiter(
        name=config.name,
        algorithm=int(config.algorithm),  # type: ignore[arg-type]
        limit=config.limit,
        period=duration(config.period_us),
        failure_mode=int(config.failure_mode),  # type: ignore[arg-type]
        shadow=config.shadow,
        description=config.description,
        create_time=timestamp(config.create_us),
        update_time=timestamp(config.update_us),
    )
    if config.algorithm is Algorithm.GCRA:
        message.burst = config.burst
    if config.algorithm is Algorithm.CONCURRENCY:
        message.lease_ttl.CopyFrom(duration(config.lease_ttl_us))
    return message


class LimiterServicer(limiter_pb2_grpc.LimiterServiceServicer):  # type: ignore[misc]
    """Thin translation between the contract and `Limiters`."""

    def __init__(self, limiters: Limiters) -> None:
        self._limiters = limiters

    async def CreateLimiter(
        self, request: limiter_pb2.CreateLimiterRequest, context: object
    ) -> limiter_pb2.CreateLimiterResponse:
        """Creates a limiter."""
        v = Violations()
        limiter_id = validation.new_limiter_id(request.limiter_id, "limiter_id", v)
        if not request.HasField("limiter"):
            v.add("limiter", "is required")
        values = validation.limiter_values(request.limiter, validation.UPDATABLE, v)
        v.raise_if_any()
        created = await self._limiters.create(limiter_id, values, burst_set=request.limiter.HasField("burst"))
        return limiter_pb2.CreateLimiterResponse(limiter=to_proto(created))

    async def GetLimiter(
        self, request: limiter_pb2.GetLimiterRequest, context: object
    ) -> limiter_pb2.GetLimiterResponse:
        """Returns one limiter."""
        v = Violations()
        limiter_id = validation.limiter_id(request.name, "name", v)
        v.raise_if_any()
        return limiter_pb2.GetLimiterResponse(limiter=to_proto(await self._limiters.get(limiter_id)))

    async def ListLimiters(
        self, request: limiter_pb2.ListLimitersRequest, context: object
    ) -> limiter_pb2.ListLimitersResponse:
        """One page of limiters."""
        v = Violations()
        size, after = validation.page(request.page_size, request.page_token, v)
        v.raise_if_any()
        page, last = await self._limiters.page(after, size)
        return limiter_pb2.ListLimitersResponse(
            limiters=[to_proto(c) for c in page], next_page_token=f"after:{last}" if last else ""
        )

    async def UpdateLimiter(
        self, request: limiter_pb2.UpdateLimiterRequest, context: object
    ) -> limiter_pb2.UpdateLimiterResponse:
        """Changes the fields named by the update mask."""
        v = Violations()
        limiter_id = validation.limiter_id(request.limiter.name, "limiter.name", v)
        fields = validation.update_fields(request.update_mask.paths, v)
        values = validation.limiter_values(request.limiter, fields, v)
        full = set(request.update_mask.paths) <= {"*"}
        if values.get("burst", 0) is None:
            if full and "limit_count" in values:
                values["burst"] = values[
                    "limit_count"
                ]  # a full replacement: unset fields take their defaults
            else:
                del values[
                    "burst"
                ]  # not set: the stored burst follows the limit where it did (see the store)
        if "lease_ttl_us" in values and values["lease_ttl_us"] is None:
            values["lease_ttl_us"] = validation.DEFAULT_LEASE_TTL_US
        v.raise_if_any()
        burst_set = "burst" in fields and request.limiter.HasField("burst")
        updated = await self._limiters.update(limiter_id, values, burst_set=burst_set)
        return limiter_pb2.UpdateLimiterResponse(limiter=to_proto(updated))

    async def DeleteLimiter(
        self, request: limiter_pb2.DeleteLimiterRequest, context: object
    ) -> limiter_pb2.DeleteLimiterResponse:
        """Deletes a limiter and its keys."""
        v = Violations()
        limiter_id = validation.limiter_id(request.name, "name", v)
        v.raise_if_any()
        return limiter_pb2.DeleteLimiterResponse(deleted_keys=await self._limiters.delete(limiter_id))

    async def Check(self, request: limiter_pb2.CheckRequest, context: object) -> limiter_pb2.CheckResponse:
        """Decides the items."""
        items = validation.check_items(request)
        all_or_nothing = request.mode != limiter_pb2.CheckRequest.MODE_INDEPENDENT
        outcomes = await self._limiters.check(items, all_or_nothing=all_or_nothing, dry_run=request.dry_run)
        # The hot path of every check (one item or a thousand): results are added in place (building them apart
        # and passing the list copies each one) and filled field by field, fields left at their defaults are not
        # set at all, and the request's headers are chosen as the items are filled in.
        response = limiter_pb2.CheckResponse()
        add_result = response.results.add
        policy, state = headers.policy, headers.state
        chooser: headers.MostRestrictive[tuple[str, str, str]] = headers.MostRestrictive()
        offer = chooser.offer
        all_allowed = True
        for outcome in outcomes:
            view, config = outcome.view, outcome.config
            allowed = outcome.allowed
            result = add_result(allowed=allowed, limit=view.limit, remaining=view.remaining)
            if outcome.lease_id:
                result.lease_id = outcome.lease_id
            if outcome.shadow_denied:
                result.shadow_denied = True
            if view.reset_after_us:
                _set_duration(result.reset_after, view.reset_after_us)
            item_headers = result.headers
            item_policy = item_headers["RateLimit-Policy"] = policy(config.id, view.limit, config.period_us)
            item_state = item_headers["RateLimit"] = state(config.id, view)
            item_retry = ""
            if not allowed:
                all_allowed = False
                _set_duration(result.retry_after, ceil_div(view.retry_after_us, 1000) * 1000)
                item_retry = item_headers["Retry-After"] = headers.retry_after(view)
            offer(allowed, view, (item_policy, item_state, item_retry))
        response.allowed = all_allowed
        if chooser.chosen is not None:
            chosen_policy, chosen_state, chosen_retry = chooser.chosen
            response_headers = response.headers
            response_headers["RateLimit-Policy"] = chosen_policy
            response_headers["RateLimit"] = chosen_state
            if chooser.denied:
                response_headers["Retry-After"] = chosen_retry
        return response

    async def GetStatus(
        self, request: limiter_pb2.GetStatusRequest, context: object
    ) -> limiter_pb2.GetStatusResponse:
        """A key's remaining quota, changing nothing."""
        v = Violations()
        limiter_id = validation.limiter_id(request.limiter, "limiter", v)
        validation.key_check(request.key, "key", v)
        v.raise_if_any()
        view, now = await self._limiters.status(limiter_id, request.key)
        return limiter_pb2.GetStatusResponse(
            limit=view.limit,
            remaining=view.remaining,
            reset_after=duration(view.reset_after_us),
            reset_time=timestamp(now + view.reset_after_us),
        )

    async def Reset(self, request: limiter_pb2.ResetRequest, context: object) -> limiter_pb2.ResetResponse:
        """Clears one key."""
        v = Violations()
        limiter_id = validation.limiter_id(request.limiter, "limiter", v)
        validation.key_check(request.key, "key", v)
        v.raise_if_any()
        return limiter_pb2.ResetResponse(existed=await self._limiters.reset(limiter_id, request.key))

    async def Release(
        self, request: limiter_pb2.ReleaseRequest, context: object
    ) -> limiter_pb2.ReleaseResponse:
        """Frees a lease early."""
        if not request.lease_id or len(request.lease_id) > 64 or "\x00" in request.lease_id:
            v = Violations()
            v.add("lease_id", "must be a lease_id from a CheckResult (1–64 characters, no NUL)")
            v.raise_if_any()
        return limiter_pb2.ReleaseResponse(released=await self._limiters.release(request.lease_id))

    async def GetStats(
        self, request: limiter_pb2.GetStatsRequest, context: object
    ) -> limiter_pb2.GetStatsResponse:
        """Counters per limiter and in total."""
        limiter_id = None
        if request.limiter:
            v = Violations()
            limiter_id = validation.limiter_id(request.limiter, "limiter", v)
            v.raise_if_any()
        response = limiter_pb2.GetStatsResponse()
        total = response.total
        for lid, counts, keys in await self._limiters.read_stats(limiter_id):
            response.limiters.add(
                limiter=f"limiters/{lid}",
                checks=counts.checks,
                allowed=counts.allowed,
                denied=counts.denied,
                shadow_denied=counts.shadow_denied,
                active_keys=keys,
            )
            total.checks += counts.checks
            total.allowed += counts.allowed
            total.denied += counts.denied
            total.shadow_denied += counts.shadow_denied
            total.active_keys += keys
        return response
