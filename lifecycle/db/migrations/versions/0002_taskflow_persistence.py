"""TaskFlow persistence tables (resumable lifecycle flows)

Revision ID: 0002
Revises: 0001

TaskFlow's SQLAlchemy backend keeps flow progress in ``logbooks``,
``flowdetails`` and ``atomdetails``. Its own alembic migrations would share
this database's ``alembic_version`` table with the project's, so the tables
are created here instead, from TaskFlow's own table definitions (taskflow is
pinned; a TaskFlow release that changes them needs a migration here).
"""

from alembic import op
import sqlalchemy as sa
from taskflow.persistence.backends.sqlalchemy import tables


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    metadata = sa.MetaData()
    for table in tables.fetch(metadata):
        table.create(bind=op.get_bind(), checkfirst=True)


def downgrade() -> None:
    metadata = sa.MetaData()
    for table in reversed(tables.fetch(metadata)):
        table.drop(bind=op.get_bind(), checkfirst=True)
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP TYPE IF EXISTS atom_types')
        op.execute('DROP TYPE IF EXISTS intentions')
