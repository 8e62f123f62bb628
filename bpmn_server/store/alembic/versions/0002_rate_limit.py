"""rate_limit: hits per bucket in its current fixed window, shared by every process (store.rate_limits)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bpmn_server.store.types

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('rate_limit',
    sa.Column('bucket', sa.String(length=255), nullable=False),
    sa.Column('hits', sa.Integer(), nullable=False),
    sa.Column('resets_at', bpmn_server.store.types.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('bucket')
    )
    with op.batch_alter_table('rate_limit', schema=None) as batch_op:
        batch_op.create_index('ix_rate_limit_resets_at', ['resets_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('rate_limit', schema=None) as batch_op:
        batch_op.drop_index('ix_rate_limit_resets_at')

    op.drop_table('rate_limit')
