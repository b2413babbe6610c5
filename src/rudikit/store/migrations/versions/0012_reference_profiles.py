"""reference profiles stored once per deployment

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 23:40:00

``reference_profiles``: what a deployment's production is compared with (drift buckets and
reference counts of the training rows, the test scores, the expected performance), written by
the deployment's first monitor pass, so later passes neither reload the development data for it
nor read every stored test prediction.
"""

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'reference_profiles',
        sa.Column('deployment_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('model_id', sa.Integer(), nullable=False),
        sa.Column('profile', sa.JSON(), nullable=False),
        sa.Column('reference_scores', sa.LargeBinary(length=2**32 - 1), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['deployment_id'], ['deployed_models.id'], ),
        sa.ForeignKeyConstraint(['model_id'], ['models.id'], ),
        sa.PrimaryKeyConstraint('deployment_id'),
    )


def downgrade() -> None:
    op.drop_table('reference_profiles')
