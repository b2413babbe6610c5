"""production lists of temporal projects

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 18:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('production_lists',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project', sa.String(length=200), nullable=False),
    sa.Column('deployment_id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('model_group_id', sa.Integer(), nullable=False),
    sa.Column('as_of_date', sa.DateTime(timezone=True), nullable=False),
    sa.Column('k', sa.Integer(), nullable=False),
    sa.Column('cool_off_days', sa.Integer(), nullable=False),
    sa.Column('scored', sa.Integer(), nullable=False),
    sa.Column('excluded', sa.Integer(), nullable=False),
    sa.Column('data_checksum', sa.String(length=64), nullable=False),
    sa.Column('newest_record', sa.DateTime(timezone=True), nullable=True),
    sa.Column('scored_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['deployment_id'], ['deployed_models.id'], ),
    sa.ForeignKeyConstraint(['model_group_id'], ['model_groups.id'], ),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('project', 'as_of_date', name='uq_production_lists_project_date')
    )
    op.create_table('production_list_entries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('list_id', sa.Integer(), nullable=False),
    sa.Column('entity_id', sa.String(length=200), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('rank_all', sa.Integer(), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=True),
    sa.Column('reviewed_on', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reasons', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['list_id'], ['production_lists.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('production_list_entries', schema=None) as batch_op:
        batch_op.create_index('ix_production_list_entries_list_rank', ['list_id', 'rank'],
                              unique=False)
    # a production list's rank changes belong to the list, not to a development run
    with op.batch_alter_table('rank_changes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('list_id', sa.Integer(), nullable=True))
        batch_op.alter_column('run_id', existing_type=sa.Integer(), nullable=True)
        batch_op.create_foreign_key('fk_rank_changes_list_id', 'production_lists', ['list_id'],
                                    ['id'])
        batch_op.create_index('ix_rank_changes_list', ['list_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('rank_changes', schema=None) as batch_op:
        batch_op.drop_index('ix_rank_changes_list')
        batch_op.drop_constraint('fk_rank_changes_list_id', type_='foreignkey')
        batch_op.alter_column('run_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column('list_id')
    with op.batch_alter_table('production_list_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_production_list_entries_list_rank')
    op.drop_table('production_list_entries')
    op.drop_table('production_lists')
