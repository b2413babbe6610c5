"""frozen report payloads and per-column snapshot profiles

Revision ID: 0013
Revises: 0009
Create Date: 2026-12-03 22:20:00

``report_payloads``: what a run's report shows, stored when it is first written, so a rebuild
after later reviews, outcomes or runs shows the same lists and reasons. ``snapshot_profiles``:
per column of a data snapshot, its missing count, distinct values and a histogram or top
categories, for the data card's plots.
"""

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'report_payloads',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('run_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('code_version', sa.String(length=100), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('run_id', 'kind', name='uq_report_payloads_run_kind'),
    )
    op.create_table(
        'snapshot_profiles',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('snapshot_id', sa.Integer(), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('column_name', sa.String(length=300), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('rows', sa.Integer(), nullable=False),
        sa.Column('missing', sa.Integer(), nullable=False),
        sa.Column('distinct_values', sa.Integer(), nullable=False),
        sa.Column('summary', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['snapshot_id'], ['data_snapshots.id'], ),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('snapshot_profiles', schema=None) as batch_op:
        batch_op.create_index('ix_snapshot_profiles_snapshot_id', ['snapshot_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('snapshot_profiles', schema=None) as batch_op:
        batch_op.drop_index('ix_snapshot_profiles_snapshot_id')
    op.drop_table('snapshot_profiles')
    op.drop_table('report_payloads')
