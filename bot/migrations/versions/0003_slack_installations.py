"""slack installations (multi-workspace OAuth)

Revision ID: 0003_slack
Revises: 0002
Create Date: 2026-11-21 05:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0003_slack'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('slack_installations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('enterprise_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('team_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('is_enterprise_install', sa.Boolean(), nullable=False),
    sa.Column('app_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('team_name', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
    sa.Column('bot_token', sa.Text(), nullable=False),
    sa.Column('bot_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('bot_user_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('bot_scopes', sa.Text(), server_default='', nullable=False),
    sa.Column('installer_user_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('installed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('enterprise_id', 'team_id', name='uq_slack_installations_org_team')
    )


def downgrade() -> None:
    op.drop_table('slack_installations')
