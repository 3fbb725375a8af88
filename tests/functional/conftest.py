"""The all-in-one deployment as a test harness: real SQLite file, real
libvirt (``test:///default`` for the fast tier, ``qemu:///system`` for the
slow one), real qcow2 files, the REST API on a free port."""

import concurrent.futures
import os
import subprocess

import pytest
from oslo_config import cfg

from lifecycle.cmd import aio as aio_cmd
from lifecycle.compute import rpcapi as compute_rpcapi
from lifecycle.conf import CONF
from tests.functional.ceph_fixture import ceph_cluster  # noqa: F401
from tests.functional.glance_fixture import glance_server  # noqa: F401
from tests.functional.guest_fixture import counting_guest  # noqa: F401
from tests.harness.client import Client

pytest.importorskip('libvirt')


def _configure(overrides: dict) -> None:
    for (group, name), value in overrides.items():
        CONF.set_override(name, value, group=group)


@pytest.fixture
def make_aio(qemu_dir):
    """Start an all-in-one: ``make_aio(uri, {(group, option): value})``."""
    started: list[aio_cmd.AllInOne] = []
    touched: list[tuple[str | None, str]] = []

    def make(uri: str = 'test:///default',
             extra: dict | None = None) -> aio_cmd.AllInOne:
        overrides = {
            (None, 'transport_url'): 'inproc://',
            (None, 'shutdown_timeout'): 0,
            ('aio', 'state_dir'): qemu_dir,
            ('aio', 'hosts'): ['host-a1:group-a', 'host-a2:group-a',
                               'host-b1:group-b'],
            ('aio', 'host_vcpus'): 4,
            ('aio', 'host_memory_mb'): 4096,
            ('api', 'port'): 0,
            ('libvirt', 'connection_uri'): uri,
            ('libvirt', 'fall_back_to_test_driver'): False,
            ('image', 'default_image_size_mb'): 64,
            # Stated, not left to the default: a private ConfigOpts of
            # another test (glance_fixture.make_conf) shares the option
            # groups, and its override of the source would leak here.
            ('image', 'source'): 'local',
            ('database', 'connection'): None,
        }
        overrides.update(extra or {})
        _configure(overrides)
        touched.extend(overrides)
        aio = aio_cmd.AllInOne().start()
        started.append(aio)
        return aio

    yield make
    errors = []
    for aio in started:
        try:
            # A failed test must not leave guests running on the real
            # libvirtd.
            for host in aio.hosts:
                for instance_uuid in aio.driver.list_instance_uuids(host):
                    try:
                        aio.driver.undefine(instance_uuid)
                    except Exception as e:  # reported below, after the stop
                        errors.append(e)
        finally:
            # Whatever failed above: an all-in-one left running takes the
            # next tests' inproc:// messages (one exchange per process).
            _stop(aio)
    for group, name in touched:
        try:
            CONF.clear_override(name, group=group)
        except cfg.NoSuchOptError:
            pass
    if errors:
        raise errors[0]


def _stop(aio: aio_cmd.AllInOne) -> None:
    """``aio.stop()``, with its compute services stopped side by side.

    Once it has served, each part takes up to a second to stop (the API's
    serve loop polls every 0.5 s; an RPC server waits for its idle worker
    threads, which poll their queue every second). One after the other,
    that was 1-3 s per test and 20 s for 20 hosts. The order stays
    ``stop``'s: the API, then the conductor (whose work in flight may
    still wait for a compute host's answer), then the compute hosts, which
    call no other service, all at once. ``stop`` ends the rest (transport,
    database)."""
    errors = []

    def stop(part) -> None:
        try:
            part.stop()
        except Exception as e:  # the other parts still stop
            errors.append(e)

    if aio.api is not None:
        stop(aio.api)
        aio.api = None
    services, aio.services = list(reversed(aio.services)), []
    computes = [svc for svc in services
                if svc.topic.endswith(compute_rpcapi.TOPIC)]
    for svc in services:
        if svc not in computes:
            stop(svc)
    with concurrent.futures.ThreadPoolExecutor(max(len(computes), 1)) as pool:
        list(pool.map(stop, computes))
    aio.stop()
    if errors:
        raise errors[0]


@pytest.fixture
def client_for():
    return Client


@pytest.fixture
def aio(make_aio):
    """The default all-in-one on the test driver; modules that need other
    settings define their own ``aio``."""
    return make_aio()


@pytest.fixture
def client(aio):
    return Client(aio.url)


def qemu_io(disk: str, command: str, fmt: str = 'qcow2') -> str:
    """Run one qemu-io command; -U because a running guest holds the lock
    (reads only; writes are done while no guest runs)."""
    args = ['qemu-io', '-f', fmt]
    if command.startswith('read'):
        args += ['-r', '-U']
    args += ['-c', command, disk]
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode:
        # qemu-io exits 1 on a pattern mismatch too: say what it saw.
        error = subprocess.CalledProcessError(
            result.returncode, args, result.stdout, result.stderr)
        error.add_note('qemu-io said: %s %s' % (result.stdout, result.stderr))
        raise error
    assert 'Pattern verification failed' not in result.stdout, result.stdout
    assert 'error' not in result.stdout.lower(), result.stdout
    return result.stdout


def disk_of(aio, server_id: str, group: str = 'group-a') -> str:
    return os.path.join(aio.storage_path(group), server_id, 'disk')
