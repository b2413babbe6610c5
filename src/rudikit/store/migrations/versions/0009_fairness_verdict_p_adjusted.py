"""fairness verdicts: the corrected p-value behind an audit cell's verdict

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 18:05:00

An audit cell is "unfair" only when the test of its ratio against the fairness bounds,
corrected over the groups of one attribute and metric, is significant; that corrected p-value
is kept beside the uncorrected test against the reference (``p_value``).
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('fairness_audits', schema=None) as batch_op:
        batch_op.add_column(sa.Column('p_adjusted', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('fairness_audits', schema=None) as batch_op:
        batch_op.drop_column('p_adjusted')
