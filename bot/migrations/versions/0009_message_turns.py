"""messages.turn_run_id and an index of each thread's unanswered messages: whose turn it is (bot.thread_turns)

Revision ID: 0009_message_turns
Revises: 0008_token_usage
Create Date: 2026-12-06 21:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009_message_turns'
down_revision = '0008_token_usage'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('messages', sa.Column('turn_run_id', sa.BigInteger(), nullable=True))
    op.create_index(
        'ix_messages_thread_open',
        'messages',
        ['thread_id', 'id'],
        unique=False,
        postgresql_where=sa.text("role = 'user' AND status IN ('pending', 'processing')"),
    )


def downgrade() -> None:
    op.drop_index('ix_messages_thread_open', table_name='messages')
    op.drop_column('messages', 'turn_run_id')
