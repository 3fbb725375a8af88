"""A fault recorded with the state change that ends a task lands in the
same transaction as that change: when the conditional update loses, neither
the state nor the fault is written; when it wins, whoever reads the ended
task also reads its fault (a test polling ``task_state`` used to catch the
gap between the two commits). Real SQLite."""

import uuid

import pytest

from lifecycle import exception
from lifecycle.db import api as db_api
from lifecycle.db import migration
from lifecycle.db import models


@pytest.fixture
def db(tmp_path):
    database = db_api.Database('sqlite:///%s' % (tmp_path / 'faults.sqlite'))
    migration.sync(database)
    database.compute_node_report('h1', {
        'hypervisor_hostname': 'h1', 'hypervisor_type': 'QEMU', 'vcpus': 4,
        'memory_mb': 4096, 'reserved_memory_mb': 0,
        'cpu_allocation_ratio': 1.0, 'ram_allocation_ratio': 1.0})
    yield database
    database.dispose()


def _unshelving(db):
    instance = db.instance_create({
        'uuid': str(uuid.uuid4()), 'display_name': 'i', 'user_id': 'u',
        'project_id': 'p', 'image_ref': 'none', 'flavorid': 'f',
        'flavor_name': 'f', 'vcpus': 1, 'memory_mb': 512, 'root_gb': 1,
        'vm_state': 'shelved_offloaded', 'task_state': 'unshelving'})
    db.claim(instance.uuid, 'h1')
    return instance.uuid


def _used(db):
    node = db.compute_node_get('h1')
    return node.vcpus_used, node.memory_mb_used


FAULT = db_api.Fault(400, 'the export is unusable', details='InvalidVolume',
                     host='h1')


def test_release_with_fault_writes_both(db):
    instance_uuid = _unshelving(db)
    assert _used(db) == (1, 512)

    assert db.release_claim(
        instance_uuid, only_host='h1', only_task_state='unshelving',
        values={'task_state': None}, fault=FAULT) == 'h1'

    instance = db.instance_get(instance_uuid)
    assert instance.task_state is None
    assert instance.claimed_host is None
    assert (instance.fault.code, instance.fault.message,
            instance.fault.details, instance.fault.host) == (
        400, 'the export is unusable', 'InvalidVolume', 'h1')
    assert _used(db) == (0, 0)


@pytest.mark.parametrize('condition', [
    {'only_host': 'h2'}, {'only_task_state': 'spawning'}])
def test_release_that_loses_writes_no_fault(db, condition):
    instance_uuid = _unshelving(db)

    assert db.release_claim(instance_uuid, values={'task_state': None},
                            fault=FAULT, **condition) is None

    instance = db.instance_get(instance_uuid)
    assert instance.task_state == 'unshelving'
    assert instance.claimed_host == 'h1'
    assert instance.fault is None
    assert _used(db) == (1, 512)


def test_update_with_fault(db):
    instance_uuid = _unshelving(db)

    with pytest.raises(exception.InstanceInvalidState):
        db.instance_update(instance_uuid, {'task_state': None},
                           expected_task_state='spawning', fault=FAULT)
    assert db.instance_get(instance_uuid).fault is None

    db.instance_update(instance_uuid, {'task_state': None},
                       expected_task_state='unshelving', fault=FAULT)
    instance = db.instance_get(instance_uuid)
    assert instance.task_state is None
    assert instance.fault.details == 'InvalidVolume'


def test_update_of_a_missing_instance_writes_no_fault(db):
    missing = str(uuid.uuid4())
    with pytest.raises(exception.InstanceNotFound):
        db.instance_update(missing, {'task_state': None}, fault=FAULT)
    with db.session() as session:
        assert session.query(models.InstanceFault).count() == 0


def test_fault_from_exception():
    ours = db_api.Fault.from_exception(
        exception.NoValidHost(reason='no host has room'), host='c1')
    assert (ours.code, ours.details, ours.host) == (500, 'NoValidHost', 'c1')
    assert 'no host has room' in ours.message

    theirs = db_api.Fault.from_exception(RuntimeError())
    assert (theirs.code, theirs.message, theirs.details) == (
        500, 'RuntimeError', 'RuntimeError')
    assert db_api.Fault(500, 'x' * 300).row('u').message == 'x' * 255
