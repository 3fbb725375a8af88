"""``lifecycle-manage service list | disable | enable``: the compute
services, from the heartbeat rows their hosts write (``compute_nodes``:
``last_seen_at`` every ``[compute] report_interval`` seconds).

A host is *up* when its last heartbeat is at most ``[compute]
service_down_time`` seconds old, as the scheduler decides. A *disabled*
host keeps running its instances but gets no new ones: the scheduler
passes only enabled, up hosts (``lifecycle.conductor.scheduler``), for a
build, an unshelve (also one asking for that host) and a reschedule. Its
heartbeat never enables it again.
"""

import datetime

import sqlalchemy as sa
from oslo_config import cfg
from oslo_log import log as logging

from lifecycle import exception
from lifecycle.db import api as db_api
from lifecycle.db import models
from lifecycle.manage import CommandFailed
from lifecycle.manage import SUCCESS
from lifecycle.manage import cli
from lifecycle.manage import locate
from lifecycle.manage import output

LOG = logging.getLogger(__name__)

BINARY = 'lifecycle-compute'
COLUMNS = (('binary', 'Binary'), ('host', 'Host'),
           ('storage_group', 'Storage group'), ('status', 'Status'),
           ('state', 'State'), ('last_seen_at', 'Updated at'),
           ('vcpus_text', 'vCPUs used/total'),
           ('memory_text', 'RAM MiB used/total'),
           ('running_vms', 'Instances'))


class ServiceCommands:
    """Compute services: ``service list``, ``disable``, ``enable``."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf
        self.db = db_api.Database(locate.database_url(conf))
        locate.require_schema(self.db)

    def close(self) -> None:
        self.db.dispose()

    def _group(self, host: str) -> str | None:
        try:
            return self.db.storage_group_of_host(host)
        except exception.InvalidConfiguration:
            return 'ambiguous'

    def _row(self, node: models.ComputeNode,
             cutoff: datetime.datetime) -> dict:
        up = node.last_seen_at is not None and node.last_seen_at >= cutoff
        return {
            'binary': BINARY, 'host': node.host,
            'storage_group': self._group(node.host),
            'status': 'disabled' if node.disabled else 'enabled',
            'state': 'up' if up else 'down',
            'last_seen_at': (node.last_seen_at.isoformat() + 'Z'
                             if node.last_seen_at else None),
            'vcpus': node.vcpus, 'vcpus_used': node.vcpus_used,
            'memory_mb': node.memory_mb,
            'memory_mb_used': node.memory_mb_used,
            'running_vms': node.running_vms,
            'storage_path': node.storage_path,
        }

    def list_(self, fmt: str = 'table') -> int:
        cutoff = models.utcnow() - datetime.timedelta(
            seconds=self.conf.compute.service_down_time)
        rows = [self._row(n, cutoff) for n in self.db.compute_node_get_all()]
        down = sum(r['state'] == 'down' for r in rows)
        disabled = sum(r['status'] == 'disabled' for r in rows)
        footer = ['%d compute service(s): %d down, %d disabled (down: no '
                  'heartbeat for %ds, [compute] service_down_time).' % (
                      len(rows), down, disabled,
                      self.conf.compute.service_down_time)]
        table_rows = [dict(r, vcpus_text='%d/%d' % (r['vcpus_used'],
                                                    r['vcpus']),
                           memory_text='%d/%d' % (r['memory_mb_used'],
                                                  r['memory_mb']))
                      for r in rows]
        output.emit(fmt, {'services': rows,
                          'service_down_time':
                              self.conf.compute.service_down_time},
                    table_rows, COLUMNS, footer)
        return SUCCESS

    def _set_disabled(self, host: str, disabled: bool) -> bool:
        """Set the flag; whether it changed. CommandFailed for an unknown
        host."""
        node = models.ComputeNode
        with self.db.session() as session:
            current = session.scalar(sa.select(node.disabled).where(
                node.host == host))
            if current is None:
                known = session.scalars(sa.select(node.host).order_by(
                    node.host)).all()
                raise CommandFailed(
                    'no compute service on host %s (known: %s)'
                    % (host, ', '.join(known) or 'none'))
            if bool(current) == disabled:
                return False
            # updated_at moves: the scheduler's host cache sees the change.
            session.execute(sa.update(node).where(node.host == host).values(
                disabled=disabled, updated_at=models.utcnow()))
        return True

    def disable(self, host_name: str, reason: str | None = None,
                fmt: str = 'table') -> int:
        changed = self._set_disabled(host_name, True)
        LOG.info('Compute service on host %s disabled%s', host_name,
                 ': %s' % reason if reason else '')
        return self._report(host_name, changed, 'disabled', reason, fmt)

    def enable(self, host_name: str, fmt: str = 'table') -> int:
        changed = self._set_disabled(host_name, False)
        LOG.info('Compute service on host %s enabled', host_name)
        return self._report(host_name, changed, 'enabled', None, fmt)

    def _report(self, host: str, changed: bool, status: str,
                reason: str | None, fmt: str) -> int:
        text = 'Compute service on host %s %s%s.' % (
            host, status if changed else 'was already ' + status,
            ' (reason: %s)' % reason if reason else '')
        output.emit(fmt, {'host': host, 'binary': BINARY, 'status': status,
                          'changed': changed, 'reason': reason},
                    footer=[text])
        return SUCCESS


def register(subparsers) -> dict[str, type]:
    actions = cli.add_category(
        subparsers, 'service', 'compute services and their state (list, '
        'disable, enable)',
        'The compute services (lifecycle-compute, or the all-in-one\'s '
        'hosts), from the heartbeat each writes to the database every '
        '[compute] report_interval seconds. A host is up when its last '
        'heartbeat is at most [compute] service_down_time seconds old. '
        'lifecycle-api and lifecycle-conductor write no heartbeat and are '
        'not listed.')
    cli.add_format(cli.add_action(
        actions, 'list', 'every compute service: status (enabled or '
        'disabled), state (up or down), last heartbeat, usage'))
    for name, summary in (
            ('disable', 'stop scheduling new instances (builds, unshelves) '
                        'to HOST; its running instances are left alone'),
            ('enable', 'schedule to HOST again')):
        action = cli.add_action(actions, name, summary)
        action.add_argument('host_name', metavar='HOST',
                            help='the compute host, as "service list" '
                                 'shows it ([DEFAULT] host of its '
                                 'lifecycle-compute)')
        if name == 'disable':
            action.add_argument(
                '--reason', metavar='R',
                help='why (logged with the change; not stored: the '
                     'database has no column for it yet)')
        cli.add_format(action)
    return {'service': ServiceCommands}
