"""media: shared files, transcripts (utterances), tags, embedded transcript chunks (pgvector); messages.files

Revision ID: 0004_media
Revises: 0003_slack
Create Date: 2026-11-21 10:00:00.000000
"""

from __future__ import annotations

import pgvector.sqlalchemy
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0004_media'
down_revision = '0003_slack'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute('CREATE EXTENSION IF NOT EXISTS vector')
    op.add_column('messages', sa.Column('files', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.create_table('media',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('message_id', sa.BigInteger(), nullable=True),
    sa.Column('file_index', sa.Integer(), nullable=False),
    sa.Column('thread_id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=32), nullable=False),
    sa.Column('workspace_id', sa.String(length=128), nullable=False),
    sa.Column('channel_id', sa.String(length=128), nullable=False),
    sa.Column('owner_id', sa.String(length=128), nullable=False),
    sa.Column('run_id', sa.BigInteger(), nullable=True),
    sa.Column('name', sa.String(length=512), nullable=False),
    sa.Column('platform_file_id', sa.String(length=256), nullable=False),
    sa.Column('blob_key', sa.String(length=1024), nullable=False),
    sa.Column('content_type', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('size', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('duration_s', sa.Float(), nullable=True),
    sa.Column('language', sa.String(length=32), nullable=False),
    sa.Column('transcript', sa.Text(), nullable=True),
    sa.Column('chain', sa.String(length=128), nullable=False),
    sa.Column('chain_version', sa.String(length=64), nullable=False),
    sa.Column('digest', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'stored', 'transcribed', 'done', 'failed')", name='ck_media_status'),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['thread_id'], ['threads.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('message_id', 'file_index', name='uq_media_message_file')
    )
    op.create_index('ix_media_thread_id', 'media', ['thread_id', 'id'], unique=False)
    op.create_index('ix_media_owner', 'media', ['platform', 'workspace_id', 'owner_id'], unique=False)
    op.create_table('media_utterances',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('media_id', sa.BigInteger(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('speaker', sa.Integer(), nullable=False),
    sa.Column('start_s', sa.Float(), nullable=False),
    sa.Column('end_s', sa.Float(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['media_id'], ['media.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('media_id', 'seq', name='uq_media_utterances_seq')
    )
    op.create_table('media_tags',
    sa.Column('media_id', sa.BigInteger(), nullable=False),
    sa.Column('tag', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['media_id'], ['media.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('media_id', 'tag')
    )
    op.create_index('ix_media_tags_tag', 'media_tags', ['tag'], unique=False)
    op.create_table('media_chunks',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('media_id', sa.BigInteger(), nullable=False),
    sa.Column('thread_id', sa.Integer(), nullable=False),
    sa.Column('channel_key', sa.String(length=300), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('start_s', sa.Float(), nullable=False),
    sa.Column('end_s', sa.Float(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('embedding', pgvector.sqlalchemy.Vector(dim=1536), nullable=False),
    sa.ForeignKeyConstraint(['media_id'], ['media.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['thread_id'], ['threads.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('media_id', 'seq', name='uq_media_chunks_seq')
    )
    op.create_index('ix_media_chunks_thread', 'media_chunks', ['thread_id'], unique=False)
    op.create_index('ix_media_chunks_channel', 'media_chunks', ['channel_key'], unique=False)


def downgrade() -> None:
    op.drop_table('media_chunks')
    op.drop_table('media_tags')
    op.drop_table('media_utterances')
    op.drop_table('media')
    op.drop_column('messages', 'files')
