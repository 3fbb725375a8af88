"""Several service processes over real RabbitMQ and PostgreSQL/MariaDB.

Each deployment is started the way an operator starts one: config files
written to disk, ``lifecycle-manage db sync`` run once, then
``python -m lifecycle.cmd.{conductor,api,compute} --config-file ...`` as
separate processes.

Isolation, so that parallel runs (two CI jobs, a developer's run beside CI)
sharing one RabbitMQ and one database server never see each other:

* a fresh database per deployment, created here and dropped at the end of
  the session;
* a unique ``[DEFAULT] rpc_topic_prefix`` per deployment. A unique
  ``control_exchange`` would not do: RabbitMQ queues are named after the
  topic alone, so two deployments with the same topics but different
  exchanges bind and consume the same queues. Queues are declared
  auto-delete so a finished run leaves none behind;
* per-deployment directories for images and storage groups, and libvirt
  domains found by their disks under those directories.

The harness itself is tests/harness/deployment.py (tools/bench uses it too).
Processes are terminated (then killed) in teardown whatever happened, and
die with the test process if it is killed (``PR_SET_PDEATHSIG``). Each
process writes its own log file; when a test fails, the tail of every log is
attached to the report.
"""

import os

import pytest

from tests.conftest import require

pytest.importorskip('libvirt')

from tests.harness.deployment import DATABASE_SERVERS
from tests.harness.deployment import DatabaseServer
from tests.harness.deployment import Deployment
from tests.harness.deployment import Standbys
from tests.harness.rabbit import RABBIT_URL
from tests.harness.rabbit import rabbit_usable
from tests.harness.client import Client

_DEPLOYMENTS = pytest.StashKey[list]()


# -- external services ------------------------------------------------------

@pytest.fixture(scope='session')
def rabbit_url() -> str:
    require(rabbit_usable(RABBIT_URL), 'RabbitMQ at %s' % RABBIT_URL)
    return RABBIT_URL


@pytest.fixture(scope='session', params=sorted(DATABASE_SERVERS))
def database_server(request):
    server = DatabaseServer(request.param)
    yield server
    server.drop_all()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        for deployment in item.stash.get(_DEPLOYMENTS, []):
            for title, text in deployment.log_sections():
                report.sections.append((title, text))
    return report


@pytest.fixture(scope='package')
def standbys(tmp_path_factory):
    """The :class:`Standbys` of the integration tests, ended after the
    last one."""
    pool = Standbys(str(tmp_path_factory.mktemp('standbys')))
    yield pool
    pool.close()


@pytest.fixture
def make_deployment(request, tmp_path, qemu_dir, rabbit_url, standbys):
    """``make_deployment(database_url, libvirt_uri, hosts=..., ...)``: a
    :class:`Deployment`, started unless ``start=False``, and stopped
    (processes terminated, guests removed) in teardown whatever the test
    did. ``standby=True``: its processes come from :class:`Standbys`
    (restarts without the seconds of imports)."""
    deployments: list[Deployment] = []
    request.node.stash[_DEPLOYMENTS] = deployments

    def make(database_url: str, libvirt_uri: str, *, hosts: dict[str, str],
             host_vcpus: int = 4, host_memory_mb: int = 128,
             start: bool = True, standby: bool = False,
             **start_args) -> Deployment:
        n = len(deployments)
        log_dir = tmp_path / ('deployment-%d' % n)
        log_dir.mkdir()
        deployment = Deployment(
            root=os.path.join(qemu_dir, 'd%d' % n), log_dir=str(log_dir),
            database_url=database_url, transport_url=rabbit_url,
            libvirt_uri=libvirt_uri, hosts=hosts, host_vcpus=host_vcpus,
            host_memory_mb=host_memory_mb,
            standbys=standbys if standby else None)
        deployments.append(deployment)
        return deployment.start(**start_args) if start else deployment

    yield make
    for deployment in deployments:
        deployment.stop()


@pytest.fixture
def client_for():
    return Client
