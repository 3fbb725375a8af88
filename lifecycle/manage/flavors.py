"""``lifecycle-manage flavor list | create``: the flavors servers are
created with (the REST API's ``POST /flavors`` needs an admin token; this
needs only the database)."""

import argparse
import uuid

from oslo_config import cfg

from lifecycle import deploy
from lifecycle import exception
from lifecycle.db import api as db_api
from lifecycle.manage import SUCCESS
from lifecycle.manage import UsageError
from lifecycle.manage import cli
from lifecycle.manage import locate
from lifecycle.manage import output

COLUMNS = (('flavorid', 'ID'), ('name', 'Name'), ('vcpus', 'VCPUs'),
           ('memory_mb', 'RAM (MiB)'), ('root_gb', 'Disk (GiB)'),
           ('is_public', 'Public'))


def _doc(flavor) -> dict:
    return {'flavorid': flavor.flavorid, 'name': flavor.name,
            'vcpus': flavor.vcpus, 'memory_mb': flavor.memory_mb,
            'root_gb': flavor.root_gb, 'ephemeral_gb': flavor.ephemeral_gb,
            'swap': flavor.swap, 'is_public': flavor.is_public,
            'description': flavor.description}


def _positive(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError('%r is not an integer'
                                             % text) from None
        if value < minimum:
            raise argparse.ArgumentTypeError('must be at least %d'
                                             % minimum)
        return value
    return parse


class FlavorCommands:
    """Flavors: ``flavor list``, ``flavor create``."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.db = db_api.Database(locate.database_url(conf))
        locate.require_schema(self.db)

    def close(self) -> None:
        self.db.dispose()

    def list_(self, fmt: str = 'table') -> int:
        flavors = [_doc(f) for f in self.db.flavor_get_all()]
        footer = ['%d flavor(s).' % len(flavors)]
        if not flavors:
            footer.append('No flavor: "lifecycle-manage db sync" creates '
                          'the defaults (%s) in a database without any, or '
                          'use "flavor create".'
                          % ', '.join(deploy.DEFAULT_FLAVORS))
        output.emit(fmt, {'flavors': flavors}, flavors, COLUMNS, footer)
        return SUCCESS

    def create(self, flavor_name: str, vcpus: int, ram: int, disk: int,
               flavorid: str | None = None, description: str | None = None,
               fmt: str = 'table') -> int:
        values = {'flavorid': flavorid or str(uuid.uuid4()),
                  'name': flavor_name, 'vcpus': vcpus, 'memory_mb': ram,
                  'root_gb': disk, 'description': description}
        try:
            flavor = self.db.flavor_create(values)
        except exception.FlavorExists as e:
            raise UsageError(e.format_message()) from e
        doc = _doc(flavor)
        output.emit(fmt, doc, [doc], COLUMNS)
        return SUCCESS


def register(subparsers) -> dict[str, type]:
    actions = cli.add_category(
        subparsers, 'flavor', 'flavors (list, create)',
        'The flavors of the deployment\'s database. "db sync" creates the '
        'default ones (%s) in a database that has none.'
        % ', '.join(deploy.DEFAULT_FLAVORS))
    cli.add_format(cli.add_action(actions, 'list', 'every flavor'))
    create = cli.add_action(
        actions, 'create', 'create a flavor',
        'Create a flavor, as Nova\'s "openstack flavor create" (public, no '
        'ephemeral disk, no swap).')
    create.add_argument('flavor_name', metavar='NAME',
                        help='the flavor name (unique)')
    create.add_argument('--vcpus', type=_positive(1), required=True,
                        help='number of vCPUs (at least 1)')
    create.add_argument('--ram', type=_positive(1), required=True,
                        metavar='MiB', help='memory in MiB (at least 1)')
    create.add_argument('--disk', type=_positive(0), default=0,
                        metavar='GiB',
                        help='root disk size in GiB (default 0: the '
                             "image's virtual size)")
    create.add_argument('--id', dest='flavorid', metavar='ID',
                        help='the flavor id (unique; default: a new UUID, '
                             'as Nova\'s "auto")')
    create.add_argument('--description', help='free text')
    cli.add_format(create)
    return {'flavor': FlavorCommands}
