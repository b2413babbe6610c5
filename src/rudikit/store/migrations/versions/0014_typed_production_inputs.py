"""typed production inputs: a side table per deployed model

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-04 09:10:00

``production_input_tables`` records, per model, its side table ``production_inputs_model_<id>``
(the inputs of each production prediction as typed columns, its score and event time, filled by
a trigger on ``production_predictions``); every model deployed so far gets its table, filled from
the stored JSON rows (see :mod:`rudikit.store.production_inputs`).
"""

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    from rudikit.store.production_inputs import create_inputs_table, spec_from_store

    op.create_table(
        'production_input_tables',
        sa.Column('model_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('table_name', sa.String(length=63), nullable=False),
        sa.Column('time_field', sa.String(length=200), nullable=True),
        sa.Column('inputs', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['model_id'], ['models.id'], ),
        sa.PrimaryKeyConstraint('model_id'),
    )
    conn = op.get_bind()
    for model_id in sorted(set(conn.execute(sa.text(
            "SELECT model_id FROM deployed_models")).scalars())):
        create_inputs_table(conn, model_id, spec_from_store(conn, model_id))


def downgrade() -> None:
    from rudikit.store.production_inputs import drop_inputs_table

    conn = op.get_bind()
    for model_id in conn.execute(sa.text(
            "SELECT model_id FROM production_input_tables")).scalars().all():
        drop_inputs_table(conn, model_id)
    op.drop_table('production_input_tables')
