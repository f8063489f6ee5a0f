"""messages.job_id dropped: it was never written (a message's work is its run, `messages.run_id`, whose wake-ups
are the jobs), so every row showed it empty

Revision ID: 0007_drop_message_job_id
Revises: 0006_outbox_note
Create Date: 2026-12-04 19:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0007_drop_message_job_id'
down_revision = '0006_outbox_note'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_column('messages', 'job_id')


def downgrade() -> None:
    op.add_column('messages', sa.Column('job_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True))
