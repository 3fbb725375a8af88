"""``lifecycle-manage disks audit | cleanup`` and hibernate-shelve's saved
memory states: a planted state file that no instance records is found and
removed; the state of a hibernate-shelved server is left alone. On the
test:///default driver, whose save and restore are real libvirt calls
(the state file holds the domain's XML)."""

import os

from lifecycle.compute import hibernate
from tests.functional.manage.helpers import _boot
from tests.functional.manage.helpers import _shelve
from tests.functional.manage.helpers import run_json


def _state(aio, server_id, group='group-a'):
    return os.path.join(aio.storage_path(group), server_id,
                        hibernate.MEMORY_STATE_NAME)


def test_orphan_memory_state_found_and_cleaned(aio, client, config):
    hibernated = _boot(client, 'hibernated', 'host-a1')
    assert client.action(hibernated, {
        'shelve': {'lifecycle:keep_memory': True}})[0] == 202
    server = client.wait(hibernated, 'SHELVED_OFFLOADED')
    assert server['lifecycle:memory_state'] is not None
    legit = _state(aio, hibernated)
    assert os.path.getsize(legit) > 0

    running = _boot(client, 'running', 'host-a2')
    shelved = _boot(client, 'shelved', 'host-a1')
    _shelve(client, shelved)
    assert client.server(shelved)['lifecycle:memory_state'] is None
    planted = {}
    for server_id in (running, shelved):
        path = _state(aio, server_id)
        with open(path, 'wb') as f:
            f.write(b'LibvirtQemudSave' + bytes(8192))
        planted[server_id] = path

    code, doc = run_json(config, 'disks', 'audit', '--category',
                         'orphan-memory-state')
    assert code == 3, doc
    assert {(f['category'], f['resource']) for f in doc['findings']} == {
        ('orphan-memory-state', running), ('orphan-memory-state', shelved)}

    code, doc = run_json(config, 'disks', 'cleanup', '--yes', '--category',
                         'orphan-memory-state')
    assert code == 0, doc
    assert {r['action'] for r in doc['results']} == {'removed'}
    assert not any(os.path.exists(p) for p in planted.values())
    assert os.path.getsize(legit) > 0

    # And the hibernated server resumes from its state, which then goes.
    assert client.action(hibernated,
                         {'unshelve': {'host': 'host-a2'}})[0] == 202
    client.wait(hibernated, 'ACTIVE')
    assert not os.path.exists(legit)
    assert aio.db.instance_get(hibernated).fault is None
    # Restored with this host's owner metadata.
    assert hibernated in aio.driver.list_instance_uuids('host-a2')
    assert hibernated not in aio.driver.list_instance_uuids('host-a1')


def test_hibernated_but_not_offloaded_resumes_on_its_host(make_aio,
                                                         client_for):
    """``shelved_offload_time = -1``: the saved guest keeps its (shut off)
    definition and its claim on its host; unshelve restores it there."""
    aio = make_aio(extra={(None, 'shelved_offload_time'): -1})
    client = client_for(aio.url)
    server_id = _boot(client, 'kept', 'host-a1')
    assert client.action(server_id, {
        'shelve': {'lifecycle:keep_memory': True}})[0] == 202
    server = client.wait(server_id, 'SHELVED')
    assert server['lifecycle:memory_state'] is not None
    state = _state(aio, server_id)
    assert os.path.getsize(state) > 0
    assert server_id in aio.driver.list_instance_uuids('host-a1')
    assert aio.driver.get_power_state(server_id) != 1   # not running

    assert client.action(server_id, {'unshelve': None})[0] == 202
    server = client.wait(server_id, 'ACTIVE')
    assert server['lifecycle:memory_state'] is None
    assert aio.driver.get_power_state(server_id) == 1
    assert not os.path.exists(state)
    assert aio.db.instance_get(server_id).fault is None
