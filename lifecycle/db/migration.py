"""Schema migrations with alembic (``lifecycle-manage db sync``)."""

import os

from alembic import command
from alembic import config as alembic_config
from alembic import migration
from alembic import script

from lifecycle.db import api as db_api

MIGRATIONS_DIR = os.path.join(os.path.dirname(__file__), 'migrations')


def _config(database: db_api.Database) -> alembic_config.Config:
    config = alembic_config.Config()
    config.set_main_option('script_location', MIGRATIONS_DIR)
    config.attributes['engine'] = database.engine
    return config


def sync(database: db_api.Database, revision: str = 'head') -> None:
    command.upgrade(_config(database), revision)


def current_version(database: db_api.Database) -> str | None:
    with database.engine.connect() as connection:
        return migration.MigrationContext.configure(
            connection).get_current_revision()


def head_version() -> str:
    directory = script.ScriptDirectory(MIGRATIONS_DIR)
    return directory.get_current_head()
