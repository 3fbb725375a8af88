"""instances: the indexes of the API's listings

Revision ID: 0005
Revises: 0004

A project's servers are read newest first, filtered on the project in the
database (before, every project's were read and filtered by the API), and
``changes-since``/``changes-before`` select on updated_at, or created_at
for a server never updated.
"""

from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

INDEXES = {
    'instances_project_id_deleted_at_idx': ['project_id', 'deleted_at'],
    'instances_created_at_idx': ['created_at'],
    'instances_updated_at_idx': ['updated_at'],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, 'instances', columns)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name='instances')
