"""what each monitor pass read of each source

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 14:00:00

``source_readings``: per monitor pass and source, the SHA-256 of the files read, the time column
and period digested, the newest record and the columns, so a later pass whose files are
unchanged reuses that pass's period digests instead of loading the development data again. An
existing store starts without readings: its next pass reads each source once.
"""

import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'source_readings',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('monitor_run_id', sa.Integer(), nullable=False),
        sa.Column('source', sa.String(length=200), nullable=False),
        sa.Column('checksum', sa.String(length=64), nullable=False),
        sa.Column('time_column', sa.String(length=200), nullable=True),
        sa.Column('period', sa.String(length=20), nullable=False),
        sa.Column('newest', sa.DateTime(timezone=True), nullable=True),
        sa.Column('columns', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['monitor_run_id'], ['monitor_runs.id'], ),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_source_readings_source', 'source_readings', ['source'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_source_readings_source', table_name='source_readings')
    op.drop_table('source_readings')
