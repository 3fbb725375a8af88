"""The compute flows' tasks with simple fakes (no database, no libvirt, no
TaskFlow engine): each task gets the host's parts in its constructor and
hands the committed row back through its run."""

import types

import pytest

from lifecycle import exception
from lifecycle import names
from lifecycle import states
from lifecycle.compute import flows
from lifecycle.compute import parts as parts_mod
from lifecycle.storage import base as storage_base

HOST = 'host-a1'
UUID = '11111111-2222-3333-4444-555555555555'


def _instance(**values):
    fields = dict(uuid=UUID, vm_state=states.SHELVED_OFFLOADED,
                  task_state=states.SPAWNING, host=None, claimed_host=HOST,
                  image_ref='image-1', root_gb=1, system_metadata={})
    fields.update(values)
    return types.SimpleNamespace(**fields)


class FakeDB:
    def __init__(self, instance) -> None:
        self.instance = instance
        self.updates: list[tuple[dict, dict]] = []
        self.released: list[dict] = []

    def instance_get(self, instance_uuid, faults=True):
        assert instance_uuid == UUID
        return self.instance

    def instance_update(self, instance_uuid, values, **kwargs):
        self.updates.append((values, kwargs))
        row = types.SimpleNamespace(**vars(self.instance))
        for key, value in values.items():
            setattr(row, key, value)
        return row

    def release_claim(self, instance_uuid, **kwargs):
        self.released.append(kwargs)


class FakeStorage:
    instances_path = '/storage'

    def __init__(self, exists: bool = True) -> None:
        self.bases: list[str] = []
        self._exists = exists

    def disk_info(self, instance_uuid):
        return storage_base.DiskInfo('/storage/%s/disk' % instance_uuid,
                                     'qcow2')

    def ensure_base(self, image_id, fetch):
        self.bases.append(image_id)

    def create_root_disk(self, instance_uuid, image_id, size_gb):
        return storage_base.DiskInfo('/storage/%s/new' % instance_uuid,
                                     'qcow2')

    def exists(self, instance_uuid):
        return self._exists


class FakeImages:
    def __init__(self) -> None:
        self.deleted: list[str] = []

    def delete(self, image_id):
        self.deleted.append(image_id)
        return True


def _run(instance, storage=None, images=None):
    db = FakeDB(instance)
    parts = parts_mod.HostParts(HOST, db, driver=None,
                                storage=storage or FakeStorage(),
                                image_service=images or FakeImages(),
                                root_volumes=None)
    return parts_mod.FlowRun(parts), db


def _task(cls, run):
    return cls('flow', run, name=cls.NAME)


def test_flows_keep_their_persisted_names():
    """Unfinished flows in the field are keyed by these (flow kind, flow
    name, task names): a change needs a migration of unfinished flows."""
    expected = {
        'spawn': ('spawn', ['prepare_root_disk', 'start_domain',
                            'record_active']),
        'shelve': ('shelve', ['power_off', 'record_shelved']),
        'hibernate_shelve': ('hibernate_shelve',
                             ['save_memory', 'record_shelved']),
        'shelve_offload': ('shelve_offload', [
            'power_off', 'record_retained_disk', 'undefine_domain',
            'release_claim']),
        'shelve_offload_volume': ('shelve_offload_volume', [
            'power_off', 'undefine_domain', 'reserve_root_volume',
            'release_claim']),
        'full_offload': ('full_offload', [
            'upload_image', 'record_image', 'delete_retained_disk',
            'record_full_offload']),
        'unshelve': ('unshelve', [
            'accept_unshelve', 'prepare_root_disk', 'start_domain',
            'record_active', 'delete_memory_state', 'delete_shelved_image']),
        'unshelve_shelved': ('unshelve_shelved', [
            'power_on', 'record_active', 'delete_memory_state']),
        'delete': ('delete', [
            'undefine_domain', 'release_claim', 'delete_disk',
            'release_root_volume', 'mark_deleted']),
    }
    found = {}
    for kind, factory in flows.FACTORIES.items():
        flow = factory(None)
        found[kind] = (flow.name, [task.name for task in flow])
    assert found == expected


def test_unshelve_disk_needs_this_hosts_claim():
    run, _db = _run(_instance(claimed_host='host-b1'))
    with pytest.raises(exception.Conflict):
        _task(flows.PrepareUnshelveDisk, run).execute(UUID)


def test_unshelve_disk_is_the_retained_disk():
    storage = FakeStorage()
    run, _db = _run(_instance(system_metadata={
        names.SHELVED_DISK: UUID + '/disk'}), storage=storage)
    record = _task(flows.PrepareUnshelveDisk, run).execute(UUID)
    assert record == {'path': '/storage/%s/disk' % UUID, 'format': 'qcow2'}
    assert storage.bases == []


def test_unshelve_disk_after_a_full_offload_comes_from_the_image():
    storage = FakeStorage()
    run, _db = _run(_instance(system_metadata={
        names.SHELVED_IMAGE_ID: 'shelved-image'}), storage=storage)
    record = _task(flows.PrepareUnshelveDisk, run).execute(UUID)
    assert record['path'] == '/storage/%s/new' % UUID
    assert storage.bases == ['shelved-image']


def test_unshelve_without_disk_or_image_fails():
    run, _db = _run(_instance())
    with pytest.raises(exception.RetainedDiskNotFound):
        _task(flows.PrepareUnshelveDisk, run).execute(UUID)


def test_spawn_disk_comes_from_the_instances_image():
    storage = FakeStorage()
    run, _db = _run(_instance(), storage=storage)
    _task(flows.PrepareRootDisk, run).execute(UUID)
    assert storage.bases == ['image-1']


def test_finish_unshelve_hands_back_the_committed_row():
    run, db = _run(_instance())
    _task(flows.FinishUnshelve, run).execute(UUID)
    values, kwargs = db.updates[-1]
    assert values['vm_state'] == states.ACTIVE and values['host'] == HOST
    assert kwargs['expected_task_state'] == states.SPAWNING
    assert kwargs['expected_claimed_host'] == HOST
    assert set(kwargs['system_metadata']) == set(names.SHELVED_KEYS)
    assert run.committed.vm_state == states.ACTIVE


def test_finish_unshelve_done_by_the_interrupted_run_changes_nothing():
    run, db = _run(_instance(vm_state=states.ACTIVE, task_state=None,
                             host=HOST))
    _task(flows.FinishUnshelve, run).execute(UUID)
    assert db.updates == [] and run.committed is None


def test_offload_releases_this_hosts_claim_and_records_the_next_request():
    run, db = _run(_instance(vm_state=states.SHELVED,
                             task_state=states.SHELVING_OFFLOADING,
                             host=HOST))
    _task(flows.ReleaseClaimOffloaded, run).execute(UUID, full=True)
    assert db.released == [{'only_host': HOST, 'only_task_state':
                            states.SHELVING_OFFLOADING}]
    values, kwargs = db.updates[-1]
    assert values['task_state'] == states.SHELVING_IMAGE_UPLOADING
    assert kwargs['request'].method == 'offload_retained_disk'
    assert kwargs['request'].host == HOST
    assert run.committed.vm_state == states.SHELVED_OFFLOADED


def test_upload_revert_keeps_the_image_once_the_disk_is_gone():
    images = FakeImages()
    run, _db = _run(_instance(), storage=FakeStorage(exists=False),
                    images=images)
    _task(flows.UploadImage, run).revert(UUID, result='image-2')
    assert images.deleted == []
    run, _db = _run(_instance(), storage=FakeStorage(exists=True),
                    images=images)
    _task(flows.UploadImage, run).revert(UUID, result='image-2')
    assert images.deleted == ['image-2']
