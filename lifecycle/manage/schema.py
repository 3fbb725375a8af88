"""``lifecycle-manage db sync | version``: the database schema, and the
default flavors of a new deployment."""

from oslo_config import cfg

from lifecycle import deploy
from lifecycle.db import api as db_api
from lifecycle.db import migration
from lifecycle.manage import SUCCESS
from lifecycle.manage import cli
from lifecycle.manage import locate
from lifecycle.manage import output


class DbCommands:
    """Database schema: ``db sync``, ``db version``."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.db = db_api.Database(locate.database_url(
            conf, must_exist=False))

    def close(self) -> None:
        self.db.dispose()

    def sync(self, revision: str = 'head', skip_flavors: bool = False,
             fmt: str = 'table') -> int:
        migration.sync(self.db, revision)
        current = migration.current_version(self.db)
        created: list[str] = []
        # Flavors are seeded only into the current schema: an older
        # revision (a downgrade) may not have the table as it is now.
        if not skip_flavors and current == migration.head_version():
            created = deploy.seed_default_flavors(self.db,
                                                  only_if_empty=True)
        footer = ['Database at revision %s' % current]
        if created:
            footer.append('Created the default flavors: %s'
                          % ', '.join(created))
        output.emit(fmt, {'revision': current, 'flavors_created': created},
                    footer=footer)
        return SUCCESS

    def version(self, fmt: str = 'table') -> int:
        current = migration.current_version(self.db)
        output.emit(fmt, {'revision': current}, footer=[current or 'none'])
        return SUCCESS


def register(subparsers) -> dict[str, type]:
    actions = cli.add_category(
        subparsers, 'db', 'database schema (sync, version)',
        'The database schema of [database] connection (the all-in-one: its '
        'SQLite file under [aio] state_dir).')
    sync = cli.add_action(
        actions, 'sync', 'upgrade the schema (and seed default flavors)',
        'Upgrade the schema to REVISION (default: the newest). On a '
        'database with no flavor at all, also create the default flavors '
        '(%s, flavor ids %s), as the all-in-one does. Run it once per '
        'deployment, before starting the services, and after every '
        'upgrade.' % (', '.join(deploy.DEFAULT_FLAVORS),
                      ', '.join(v[0] for v in
                                deploy.DEFAULT_FLAVORS.values())))
    sync.add_argument('--revision', default='head', metavar='REVISION',
                      help='alembic revision to upgrade (or downgrade) to: '
                           'an id such as 0002, or "head" (the default: '
                           'newest)')
    sync.add_argument('--skip-flavors', action='store_true',
                      help='do not create the default flavors')
    cli.add_format(sync)
    version = cli.add_action(actions, 'version',
                             'print the schema revision ("none": empty '
                             'database)')
    cli.add_format(version)
    return {'db': DbCommands}
