"""The limiter's tables (SQLAlchemy Core, on the suite's shared metadata).

`limiters` holds the definitions; `limiter_state` one row per (limiter, key) that has state; `limiter_leases`
the leases of CONCURRENCY limiters; `limiter_stats` decision counters summed over all replicas.

Times are integer microseconds of the shared clock (see services.runtime.store.clock). A state row records
the configuration it was last computed with (`cfg_*`), so a response is always explained by the same
numbers that made the decision, even while another replica changes the limiter.
"""

from __future__ import annotations

import sqlalchemy as sa

from services.runtime.store import metadata

limiters = sa.Table(
    "limiters",
    metadata,
    sa.Column("id", sa.Text, primary_key=True, comment="the limiter_id of limiters/{limiter_id}"),
    sa.Column("algorithm", sa.SmallInteger, nullable=False, comment="Limiter.Algorithm number"),
    sa.Column("limit_count", sa.BigInteger, nullable=False),
    sa.Column("period_us", sa.BigInteger, nullable=False),
    sa.Column("burst", sa.BigInteger, nullable=False, comment="GCRA capacity; = limit_count otherwise"),
    sa.Column("failure_mode", sa.SmallInteger, nullable=False),
    sa.Column("shadow", sa.Boolean, nullable=False),
    sa.Column("lease_ttl_us", sa.BigInteger, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("create_us", sa.BigInteger, nullable=False),
    sa.Column("update_us", sa.BigInteger, nullable=False),
)

limiter_state = sa.Table(
    "limiter_state",
    metadata,
    sa.Column(
        "limiter", sa.Text, sa.ForeignKey("limiters.id", ondelete="CASCADE"), primary_key=True, nullable=False
    ),
    sa.Column("key", sa.Text, primary_key=True, nullable=False),
    sa.Column("level", sa.BigInteger, comment="GCRA: tokens × period_us; windows: count; NULL: fresh"),
    sa.Column("prev_level", sa.BigInteger, comment="SLIDING_WINDOW: the previous window's count"),
    sa.Column("stamp_us", sa.BigInteger, comment="GCRA: time of `level`; windows: start of the window"),
    sa.Column("seen_us", sa.BigInteger, comment="the clock's value at the last decision"),
    sa.Column("before_level", sa.BigInteger, comment="`level` available before the last decision consumed"),
    sa.Column("admitted", sa.BigInteger, comment="requests the last decision admitted"),
    sa.Column("expires_us", sa.BigInteger, comment="from then on the state equals a fresh key's: sweepable"),
    sa.Column("cfg_limit", sa.BigInteger),
    sa.Column("cfg_burst", sa.BigInteger),
    sa.Column("cfg_period_us", sa.BigInteger),
    sa.Column("req_cost", sa.BigInteger, comment="cost of the last decision's requests"),
    sa.Column("req_count", sa.BigInteger, comment="how many requests the last decision merged"),
)
sa.Index("ix_limiter_state_expires_us", limiter_state.c.expires_us)

limiter_leases = sa.Table(
    "limiter_leases",
    metadata,
    sa.Column("lease_id", sa.Text, primary_key=True),
    sa.Column("limiter", sa.Text, sa.ForeignKey("limiters.id", ondelete="CASCADE"), nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("weight", sa.BigInteger, nullable=False, comment="units held (the check's cost)"),
    sa.Column("expires_us", sa.BigInteger, nullable=False),
)
sa.Index("ix_limiter_leases_limiter_key", limiter_leases.c.limiter, limiter_leases.c.key)
sa.Index("ix_limiter_leases_expires_us", limiter_leases.c.expires_us)

limiter_stats = sa.Table(
    "limiter_stats",
    metadata,
    sa.Column("limiter", sa.Text, sa.ForeignKey("limiters.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("checks", sa.BigInteger, nullable=False),
    sa.Column("allowed", sa.BigInteger, nullable=False),
    sa.Column("denied", sa.BigInteger, nullable=False),
    sa.Column("shadow_denied", sa.BigInteger, nullable=False),
)
