"""Limiter tables: definitions, per-key state, leases, stats.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Creates the four limiter tables."""
    op.create_table(
        "limiters",
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
        sa.PrimaryKeyConstraint("id", name="pk_limiters"),
    )
    op.create_table(
        "limiter_state",
        sa.Column("limiter", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("level", sa.BigInteger, comment="GCRA: tokens × period_us; windows: count; NULL: fresh"),
        sa.Column("prev_level", sa.BigInteger, comment="SLIDING_WINDOW: the previous window's count"),
        sa.Column("stamp_us", sa.BigInteger, comment="GCRA: time of `level`; windows: start of the window"),
        sa.Column("seen_us", sa.BigInteger, comment="the clock's value at the last decision"),
        sa.Column(
            "before_level", sa.BigInteger, comment="`level` available before the last decision consumed"
        ),
        sa.Column("admitted", sa.BigInteger, comment="requests the last decision admitted"),
        sa.Column(
            "expires_us", sa.BigInteger, comment="from then on the state equals a fresh key's: sweepable"
        ),
        sa.Column("cfg_limit", sa.BigInteger),
        sa.Column("cfg_burst", sa.BigInteger),
        sa.Column("cfg_period_us", sa.BigInteger),
        sa.Column("req_cost", sa.BigInteger, comment="cost of the last decision's requests"),
        sa.Column("req_count", sa.BigInteger, comment="how many requests the last decision merged"),
        sa.PrimaryKeyConstraint("limiter", "key", name="pk_limiter_state"),
        sa.ForeignKeyConstraint(
            ["limiter"], ["limiters.id"], name="fk_limiter_state_limiter_limiters", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_limiter_state_expires_us", "limiter_state", ["expires_us"])
    op.create_table(
        "limiter_leases",
        sa.Column("lease_id", sa.Text, nullable=False),
        sa.Column("limiter", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("weight", sa.BigInteger, nullable=False, comment="units held (the check's cost)"),
        sa.Column("expires_us", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("lease_id", name="pk_limiter_leases"),
        sa.ForeignKeyConstraint(
            ["limiter"], ["limiters.id"], name="fk_limiter_leases_limiter_limiters", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_limiter_leases_limiter_key", "limiter_leases", ["limiter", "key"])
    op.create_index("ix_limiter_leases_expires_us", "limiter_leases", ["expires_us"])
    op.create_table(
        "limiter_stats",
        sa.Column("limiter", sa.Text, nullable=False),
        sa.Column("checks", sa.BigInteger, nullable=False),
        sa.Column("allowed", sa.BigInteger, nullable=False),
        sa.Column("denied", sa.BigInteger, nullable=False),
        sa.Column("shadow_denied", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("limiter", name="pk_limiter_stats"),
        sa.ForeignKeyConstraint(
            ["limiter"], ["limiters.id"], name="fk_limiter_stats_limiter_limiters", ondelete="CASCADE"
        ),
    )


def downgrade() -> None:
    """Drops the limiter tables."""
    for table in ("limiter_stats", "limiter_leases", "limiter_state", "limiters"):
        op.drop_table(table)
