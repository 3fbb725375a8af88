"""``lifecycle-conductor``: schedules and orchestrates the operations of
instances that have no host yet (build, unshelve of an offloaded instance,
delete of an offloaded instance). Several may run; they share the work of
one topic.

    lifecycle-conductor --config-file /etc/lifecycle/lifecycle.conf
"""

import sys

from lifecycle import deploy
from lifecycle import rpc
from lifecycle.conf import CONF

NAME = 'lifecycle-conductor'
DESCRIPTION = (
    'The conductor of shelve-lifecycle: schedules builds and unshelves '
    '(filters, weighers, atomic claims in the database), orchestrates what '
    'has no host yet, escalates retained disks to full offloads by age or '
    'watermark and ends stuck tasks. Several may run on one topic. Needs '
    '[DEFAULT] transport_url and [database] connection; prints '
    '"lifecycle-conductor ready ..." when it serves.')


def _start():
    deploy.check_transport()
    db = deploy.open_database(NAME)
    transport = rpc.get_transport(CONF)
    svc = deploy.build_conductor_service(transport, db,
                                         deploy.default_host())
    svc.start()

    def stop() -> None:
        svc.stop()
        transport.cleanup()
        db.dispose()
    return stop, 'on topic %s as %s' % (svc.topic, svc.server)


def main(argv: list[str] | None = None) -> int:
    return deploy.main(NAME, argv, _start, DESCRIPTION)


if __name__ == '__main__':
    sys.exit(main())
