"""participant attempts (reload_policy 'restart')

A restart keeps the abandoned attempt (status 'restarted', responses kept) and adds a new
row for the same external id with ``attempt`` + 1 and ``restarted_from_id`` pointing back.
The unique constraint on (experiment, external id) becomes (experiment, external id, attempt).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('participant', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempt', sa.Integer(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('restarted_from_id', sa.Integer(), nullable=True))
        batch_op.drop_constraint('uq_participant_external', type_='unique')
        batch_op.create_unique_constraint('uq_participant_external_attempt',
                                          ['experiment_id', 'external_id', 'attempt'])
        batch_op.create_foreign_key('fk_participant_restarted_from', 'participant', ['restarted_from_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('participant', schema=None) as batch_op:
        batch_op.drop_constraint('fk_participant_restarted_from', type_='foreignkey')
        batch_op.drop_constraint('uq_participant_external_attempt', type_='unique')
        batch_op.create_unique_constraint('uq_participant_external', ['experiment_id', 'external_id'])
        batch_op.drop_column('restarted_from_id')
        batch_op.drop_column('attempt')
