"""run retention: workflow_runs.pruned_at and the index the sweeper's retention pass reads

Revision ID: 0005_run_retention
Revises: 0004_media
Create Date: 2026-11-21 08:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005_run_retention'
down_revision = '0004_media'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('workflow_runs', sa.Column('pruned_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        'ix_workflow_runs_prunable', 'workflow_runs', ['finished_at'], unique=False,
        postgresql_where=sa.text("status IN ('completed', 'failed', 'cancelled') AND pruned_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index('ix_workflow_runs_prunable', table_name='workflow_runs')
    op.drop_column('workflow_runs', 'pruned_at')
