"""review corrections: a review that corrects an earlier one names it

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 22:30:00

A reviewer corrects a review by recording a new one that ``supersedes`` it; the earlier row is
kept as it was (the history of a decision is never overwritten). Unique: a review is corrected
once, so two concurrent corrections of it cannot both be stored.
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('entity_reviews', schema=None) as batch_op:
        batch_op.add_column(sa.Column('supersedes', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_entity_reviews_supersedes', 'entity_reviews',
                                    ['supersedes'], ['id'])
        batch_op.create_unique_constraint('uq_entity_reviews_supersedes', ['supersedes'])


def downgrade() -> None:
    with op.batch_alter_table('entity_reviews', schema=None) as batch_op:
        batch_op.drop_constraint('uq_entity_reviews_supersedes', type_='unique')
        batch_op.drop_constraint('fk_entity_reviews_supersedes', type_='foreignkey')
        batch_op.drop_column('supersedes')
