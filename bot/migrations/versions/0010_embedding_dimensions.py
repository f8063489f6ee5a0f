"""media_chunks.embedding may be empty: changing EMBEDDING_DIMENSIONS (`bot index reembed`) changes the column's
vector width, which clears the stored vectors, and recomputes them from the chunks' text; until each is done its
chunk stays, without a vector, and is left out of retrieval

Revision ID: 0010_embedding_dimensions
Revises: 0009_message_turns
Create Date: 2026-12-06 21:30:00.000000
"""

from __future__ import annotations

from alembic import op

revision = '0010_embedding_dimensions'
down_revision = '0009_message_turns'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column('media_chunks', 'embedding', nullable=True)


def downgrade() -> None:
    # A chunk without a vector cannot stay under NOT NULL; `bot index reembed` gives them back.
    op.execute('DELETE FROM media_chunks WHERE embedding IS NULL')
    op.alter_column('media_chunks', 'embedding', nullable=False)
