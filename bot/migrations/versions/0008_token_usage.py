"""token_usage: each model call's tokens and price, for budgets and cost per run

Revision ID: 0008_token_usage
Revises: 0007_drop_message_job_id
Create Date: 2026-12-06 21:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0008_token_usage'
down_revision = '0007_drop_message_job_id'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'token_usage',
        sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column('run_id', sa.BigInteger(), nullable=True),
        sa.Column('platform', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('workspace_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column('purpose', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('prompt_tokens', sa.Integer(), nullable=False),
        sa.Column('completion_tokens', sa.Integer(), nullable=False),
        sa.Column('reported', sa.Boolean(), nullable=False),
        sa.Column('cost_usd', sa.Float(), server_default='0', nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_token_usage_payer', 'token_usage', ['platform', 'workspace_id', 'created_at'], unique=False)
    op.create_index('ix_token_usage_run', 'token_usage', ['run_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_token_usage_run', table_name='token_usage')
    op.drop_index('ix_token_usage_payer', table_name='token_usage')
    op.drop_table('token_usage')
