"""user_preferences.email: where a chain's `deliver: email` sends a user's copy (`/prefs set email=...`)

Revision ID: 0011_preference_email
Revises: 0010_embedding_dimensions
Create Date: 2026-12-06 21:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011_preference_email'
down_revision = '0010_embedding_dimensions'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('user_preferences', sa.Column('email', sa.String(length=254), nullable=False, server_default=''))


def downgrade() -> None:
    op.drop_column('user_preferences', 'email')
