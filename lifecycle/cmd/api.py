"""``lifecycle-api``: the nova-compatible REST API. Hands work to the
conductor and the compute hosts over the message bus; reads and checks
state in the shared database.

    lifecycle-api --config-file /etc/lifecycle/lifecycle.conf
"""

import sys

from lifecycle import deploy
from lifecycle import rpc
from lifecycle.conf import CONF

NAME = 'lifecycle-api'
DESCRIPTION = (
    'The nova-compatible REST API of shelve-lifecycle (servers, shelve, '
    'unshelve, flavors, images, aggregates, hypervisors), on [api] host and '
    'port. Hands work to lifecycle-conductor and the lifecycle-compute '
    'hosts over the message bus ([DEFAULT] transport_url) and reads the '
    'shared database ([database] connection). Prints "lifecycle-api ready '
    'at URL" when it serves.')


def _start():
    deploy.check_transport()
    images = deploy.build_image_service(deploy.require_image_dir())
    db = deploy.open_database(NAME)
    transport = rpc.get_transport(CONF)
    api = deploy.build_api(transport, db, images)
    api.start()

    def stop() -> None:
        api.stop()
        transport.cleanup()
        db.dispose()
    return stop, 'at %s' % api.url


def main(argv: list[str] | None = None) -> int:
    return deploy.main(NAME, argv, _start, DESCRIPTION)


if __name__ == '__main__':
    sys.exit(main())
