"""Base revision: the root every service's revision chains on (0002 limiter, 0003 …).

It creates nothing: Alembic's own `alembic_version` table records the schema version, and each service
adds its tables in its own revision.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing to create."""


def downgrade() -> None:
    """Nothing to drop."""
