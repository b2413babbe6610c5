"""the members of each ensemble model

Revision ID: 0015
Revises: 0012
Create Date: 2026-12-04 09:00:00

``ensemble_members``: which stored models an ensemble model (``algorithm: ensemble``) averages
or stacks, in the ensemble's order, with how they were chosen (validation rows or the audition
rule over training-era splits), so a report or a reviewer reads its members from the store.
"""

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'ensemble_members',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('ensemble_model_id', sa.Integer(), nullable=False),
        sa.Column('member_model_id', sa.Integer(), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('chosen_by', sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(['ensemble_model_id'], ['models.id'], ),
        sa.ForeignKeyConstraint(['member_model_id'], ['models.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('ensemble_model_id', 'position',
                            name='uq_ensemble_members_model_position'),
    )
    op.create_index(op.f('ix_ensemble_members_ensemble_model_id'), 'ensemble_members',
                    ['ensemble_model_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_ensemble_members_ensemble_model_id'), table_name='ensemble_members')
    op.drop_table('ensemble_members')
