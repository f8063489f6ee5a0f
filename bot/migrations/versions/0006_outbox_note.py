"""outbox.note: what a platform notes before the last call of a post (a Slack upload's file id), kept in the one
record of posts instead of Redis

Revision ID: 0006_outbox_note
Revises: 0005_run_retention
Create Date: 2026-12-03 07:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006_outbox_note'
down_revision = '0005_run_retention'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('outbox', sa.Column('note', sa.String(length=128), nullable=True))


def downgrade() -> None:
    op.drop_column('outbox', 'note')
