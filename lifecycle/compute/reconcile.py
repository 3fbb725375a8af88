"""Reconciliation of one compute host's libvirt domains with the database.

Each run:

* a domain of ours (our metadata names this host) that no live instance on
  this host accounts for -- the instance was offloaded, deleted or moved, or
  never existed -- is destroyed and undefined once it has been seen that way
  for ``[compute] orphan_domain_grace_period`` seconds. Its disks are never
  touched: retained disks are the operator audit's business
  (``lifecycle-manage disks audit``);
* an ``active`` instance of this host whose domain vanished is set to
  ``error`` with a fault, so it does not claim to run;
* an instance with a task in progress is left alone either way: the
  operation owns its domain until it ends.

Only this host's compute manager, in this process, defines and undefines
this host's domains, always under the instance's lock; every decision here
is re-checked under that same lock, so it is never made on a database row
older than the domain it judges.
"""

import time

from oslo_log import log as logging

from lifecycle import exception
from lifecycle import states
from lifecycle.compute import manager as compute_manager
from lifecycle.db import api as db_api

LOG = logging.getLogger(__name__)

# vm_states whose instance keeps a defined domain on its host.
_KEEPS_DOMAIN = (states.ACTIVE, states.STOPPED, states.SHELVED,
                 states.BUILDING, states.ERROR)


class Reconciler:
    def __init__(self, host: str, db: db_api.Database, driver,
                 grace_period: float) -> None:
        self.host = host
        self.db = db
        self.driver = driver
        self.grace_period = grace_period
        self._orphans_since: dict[str, float] = {}

    def run(self) -> dict[str, list[str]]:
        """One pass; returns what it did (for logs and tests)."""
        # Instances first, domains second: an instance that becomes active
        # after this read is not judged against a domain listing taken
        # before its domain existed. One that changes after the listing
        # fails the conditional update in _mark_vanished.
        active = [i for i in self.db.instance_get_all(
            host=self.host, vm_states=[states.ACTIVE])
            if i.task_state is None]
        domains = set(self.driver.list_instance_uuids(self.host))
        done = {'destroyed': [], 'errored': []}
        now = time.monotonic()
        orphans = {uuid for uuid in domains if self._is_orphan(uuid)}
        for uuid in list(self._orphans_since):
            if uuid not in orphans:
                del self._orphans_since[uuid]  # owned again, or gone
        for uuid in sorted(orphans):
            first_seen = self._orphans_since.setdefault(uuid, now)
            if now - first_seen < self.grace_period:
                continue
            with compute_manager.instance_lock(uuid):
                if not (self.driver.exists(uuid) and self._is_orphan(uuid)):
                    continue
                LOG.warning('Destroying domain of instance %s on %s: no '
                            'instance on this host owns it (seen for %.0f s)',
                            uuid, self.host, now - first_seen)
                self.driver.undefine(uuid)
            self._orphans_since.pop(uuid, None)
            done['destroyed'].append(uuid)
        for instance in active:
            if instance.uuid in domains:
                continue
            with compute_manager.instance_lock(instance.uuid):
                if (not self.driver.exists(instance.uuid) and
                        self._mark_vanished(instance.uuid)):
                    done['errored'].append(instance.uuid)
        return done

    def _is_orphan(self, instance_uuid: str) -> bool:
        try:
            instance = self.db.instance_get(instance_uuid)
        except exception.InstanceNotFound:
            return True
        if instance.task_state is not None:
            return False
        return not (instance.host == self.host and
                    instance.vm_state in _KEEPS_DOMAIN)

    def _mark_vanished(self, instance_uuid: str) -> bool:
        message = ('The libvirt domain of this instance vanished from host '
                   '%s.' % self.host)
        try:
            self.db.instance_update(
                instance_uuid, {'vm_state': states.ERROR,
                                'power_state': states.NOSTATE},
                expected_vm_state=[states.ACTIVE], expected_task_state=None,
                expected_claimed_host=self.host, action='reconcile',
                fault=db_api.Fault(500, message, details='DomainVanished',
                                   host=self.host))
        except (exception.InstanceInvalidState, exception.InstanceNotFound):
            return False  # an operation started meanwhile
        LOG.error('Instance %s: %s', instance_uuid, message)
        return True
