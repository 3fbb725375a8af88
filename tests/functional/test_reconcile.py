"""Reconciliation of libvirt domains with the database on the test driver:
orphan domains go after the grace period, vanished domains put their
instance in error with a fault, operations in progress are left alone, and
disks are never touched."""

import os
import threading
import time
import uuid

import pytest

from lifecycle.compute import reconcile
from lifecycle.virt import domain_xml
from tests.functional.conftest import disk_of


@pytest.fixture
def aio(make_aio):
    # The periodic task is driven by hand here, except where a test says.
    return make_aio(extra={('compute', 'reconcile_interval'): 0})


def _plant_domain(aio, instance_uuid, host='host-a1'):
    disk = os.path.join(aio.state_dir, 'planted-%s.qcow2' % instance_uuid)
    open(disk, 'wb').close()
    aio.driver.spawn(domain_xml.DomainSpec(
        uuid=instance_uuid, display_name='planted', vcpus=1, memory_mb=64,
        disk_path=disk, disk_format='qcow2', host=host, user_id='u',
        project_id='p', flavor_name='m1.tiny'))
    return disk


def test_orphan_domain_destroyed_after_grace_disk_kept(aio):
    stray = str(uuid.uuid4())
    disk = _plant_domain(aio, stray)
    reconciler = reconcile.Reconciler('host-a1', aio.db, aio.driver, 0.5)
    assert reconciler.run()['destroyed'] == []  # first sighting
    assert stray in aio.driver.list_instance_uuids('host-a1')
    time.sleep(0.6)
    assert reconciler.run()['destroyed'] == [stray]
    assert stray not in aio.driver.list_instance_uuids('host-a1')
    assert os.path.exists(disk)


def test_domain_of_offloaded_instance_destroyed(aio, client):
    server_id = client.boot('offloaded', host='host-a1')
    client.wait(server_id, 'ACTIVE')
    client.action(server_id, {'shelve': None})
    client.wait(server_id, 'SHELVED_OFFLOADED')
    # Someone defines the domain again behind the service's back.
    _plant_domain(aio, server_id)
    reconciler = reconcile.Reconciler('host-a1', aio.db, aio.driver, 0)
    assert reconciler.run()['destroyed'] == [server_id]
    assert os.path.exists(disk_of(aio, server_id))  # the retained disk
    client.action(server_id, {'unshelve': None})
    client.wait(server_id, 'ACTIVE')


def test_vanished_domain_sets_error_with_fault(aio, client):
    server_id = client.boot('vanishing', host='host-a2')
    keep = client.boot('unharmed', host='host-a2')
    client.wait(server_id, 'ACTIVE')
    client.wait(keep, 'ACTIVE')
    aio.driver.undefine(server_id)
    reconciler = reconcile.Reconciler('host-a2', aio.db, aio.driver, 0)
    assert reconciler.run() == {'destroyed': [], 'errored': [server_id]}
    server = client.server(server_id)
    assert server['status'] == 'ERROR'
    assert 'vanished' in server['fault']['message']
    assert client.server(keep)['status'] == 'ACTIVE'
    assert reconciler.run() == {'destroyed': [], 'errored': []}
    assert client.request('DELETE', '/servers/%s' % server_id)[0] == 204


def test_operation_in_progress_is_left_alone(aio, client):
    server_id = client.boot('busy', host='host-a1')
    client.wait(server_id, 'ACTIVE')
    compute = next(s for s in aio.services if s.server == 'host-a1')
    compute.stop()
    aio.services.remove(compute)
    client.action(server_id, {'shelve': None})  # stays in 'shelving'
    aio.driver.undefine(server_id)
    stray = str(uuid.uuid4())
    _plant_domain(aio, server_id)  # its domain, mid-operation
    _plant_domain(aio, stray)
    reconciler = reconcile.Reconciler('host-a1', aio.db, aio.driver, 0)
    assert reconciler.run() == {'destroyed': [stray], 'errored': []}
    assert server_id in aio.driver.list_instance_uuids('host-a1')
    assert client.server(server_id)['OS-EXT-STS:task_state'] == 'shelving'


def test_periodic_task_runs_in_the_service(make_aio, client_for):
    aio = make_aio(extra={('compute', 'reconcile_interval'): 1,
                          ('compute', 'orphan_domain_grace_period'): 0})
    stray = str(uuid.uuid4())
    _plant_domain(aio, stray, host='host-b1')
    deadline = time.monotonic() + 10
    while stray in aio.driver.list_instance_uuids('host-b1'):
        assert time.monotonic() < deadline, 'periodic reconcile never ran'
        time.sleep(0.1)


def test_reconciling_during_operations_harms_nothing(aio, client):
    """The reconciler running flat out while instances are booted, shelved
    and unshelved must never err an instance or destroy a live domain
    (a listing taken just before a spawn finished once did)."""
    reconcilers = [reconcile.Reconciler(host, aio.db, aio.driver, 0)
                   for host in aio.hosts]
    stop = threading.Event()
    acted = []

    def reconcile_loop():
        while not stop.is_set():
            for reconciler in reconcilers:
                done = reconciler.run()
                acted.extend(done['destroyed'] + done['errored'])

    loop = threading.Thread(target=reconcile_loop)
    loop.start()
    try:
        ids = [client.boot('busy-%d' % i) for i in range(12)]
        for server_id in ids:
            client.wait(server_id, 'ACTIVE')
        for server_id in ids:
            client.action(server_id, {'shelve': None})
        for server_id in ids:
            client.wait(server_id, 'SHELVED_OFFLOADED')
        for server_id in ids:
            client.action(server_id, {'unshelve': None})
        for server_id in ids:
            client.wait(server_id, 'ACTIVE')
    finally:
        stop.set()
        loop.join()
    # Domains other tests left on the process-wide test driver are real
    # orphans here and may go; none of this test's instances may.
    assert not set(acted) & set(ids)
    for server_id in ids:
        assert client.server(server_id)['status'] == 'ACTIVE'
        assert server_id in aio.driver.list_instance_uuids(
            client.server(server_id)['OS-EXT-SRV-ATTR:host'])
