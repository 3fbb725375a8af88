"""storage figures the compute hosts report with their heartbeat

Revision ID: 0003
Revises: 0002

A conductor or API host that does not mount a storage group's storage
cannot measure it; the hosts of the group can. Each compute host reports
what it sees of its group's storage (capacity, free space, the allocated
bytes of the whole storage and of each retained disk) on
``compute_nodes``; the watermark check and
``os-storage-groups`` use the freshest report of a live host of the group
(lifecycle/storage_groups.py).
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

_COLUMNS = ('storage_capacity_bytes', 'storage_free_bytes',
            'storage_used_bytes', 'storage_disk_bytes',
            'storage_reported_at')


def upgrade() -> None:
    with op.batch_alter_table('compute_nodes') as batch:
        batch.add_column(sa.Column('storage_capacity_bytes', sa.BigInteger(),
                                   nullable=True))
        batch.add_column(sa.Column('storage_free_bytes', sa.BigInteger(),
                                   nullable=True))
        batch.add_column(sa.Column('storage_used_bytes', sa.BigInteger(),
                                   nullable=True))
        batch.add_column(sa.Column('storage_disk_bytes', sa.Text(),
                                   nullable=True))
        batch.add_column(sa.Column('storage_reported_at', sa.DateTime(),
                                   nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('compute_nodes') as batch:
        for name in reversed(_COLUMNS):
            batch.drop_column(name)
