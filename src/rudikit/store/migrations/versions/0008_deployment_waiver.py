"""deployment waiver: why a model failing the deploy gate went live anyway

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 18:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('deployed_models', schema=None) as batch_op:
        batch_op.add_column(sa.Column('waiver', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('deployed_models', schema=None) as batch_op:
        batch_op.drop_column('waiver')
