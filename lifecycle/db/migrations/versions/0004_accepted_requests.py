"""accepted requests: what a 202 promised, until its task moves on

Revision ID: 0004
Revises: 0003

The API records the request it accepted in the transaction that sets the
instance's task_state, and every hand-over between the services replaces
it; the row goes in the transaction that moves the task on. A request lost
with a killed process or a restarted message bus is then sent again when a
service starts, or by the conductor's periodic check, instead of waiting
for the stuck-task timeout (lifecycle/requests.py).
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'accepted_requests',
        sa.Column('instance_uuid', sa.String(length=36), nullable=False),
        sa.Column('task_state', sa.String(length=255), nullable=False),
        sa.Column('service', sa.String(length=16), nullable=False),
        sa.Column('host', sa.String(length=255), nullable=True),
        sa.Column('method', sa.String(length=64), nullable=False),
        sa.Column('args', sa.Text(), nullable=False),
        sa.Column('context', sa.Text(), nullable=False),
        sa.Column('accepted_at', sa.DateTime(), nullable=False),
        sa.Column('dispatched_at', sa.DateTime(), nullable=False),
        sa.Column('dispatches', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['instance_uuid'], ['instances.uuid'],
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('instance_uuid'))
    op.create_index('accepted_requests_service_host_idx',
                    'accepted_requests', ['service', 'host'])


def downgrade() -> None:
    op.drop_index('accepted_requests_service_host_idx',
                  table_name='accepted_requests')
    op.drop_table('accepted_requests')
