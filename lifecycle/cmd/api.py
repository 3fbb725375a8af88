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
    return deploy.main(NAME, argv, _start)


if __name__ == '__main__':
    sys.exit(main())
