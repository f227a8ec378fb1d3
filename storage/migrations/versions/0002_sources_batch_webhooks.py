"""sources, batch items and webhook deliveries

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 09:20:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('material', schema=None) as batch_op:
        batch_op.add_column(sa.Column('theoretical', sa.Boolean(), nullable=True))
    with op.batch_alter_table('quarantinedrecord', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quarantinedrecord_source_id'), ['source_id'], unique=False)
    with op.batch_alter_table('batchjob', schema=None) as batch_op:
        batch_op.add_column(sa.Column('callback_status', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('items_uri', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('items_sha256', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('top_k', sa.Integer(), nullable=False, server_default='5'))
    with op.batch_alter_table('prediction', schema=None) as batch_op:
        batch_op.create_index('uq_prediction_job_item', ['job_id', 'item_index'], unique=True)
    op.create_table('webhookdelivery',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('signature', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('delivery_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=True),
    sa.Column('received_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['batchjob.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('signature')
    )
    with op.batch_alter_table('webhookdelivery', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhookdelivery_delivery_id'), ['delivery_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('webhookdelivery', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhookdelivery_delivery_id'))
    op.drop_table('webhookdelivery')
    with op.batch_alter_table('prediction', schema=None) as batch_op:
        batch_op.drop_index('uq_prediction_job_item')
    with op.batch_alter_table('batchjob', schema=None) as batch_op:
        batch_op.drop_column('top_k')
        batch_op.drop_column('items_sha256')
        batch_op.drop_column('items_uri')
        batch_op.drop_column('callback_status')
    with op.batch_alter_table('quarantinedrecord', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quarantinedrecord_source_id'))
    with op.batch_alter_table('material', schema=None) as batch_op:
        batch_op.drop_column('theoretical')
