"""iSCSI root volumes through os-brick, against a real LIO target on this
host: what :mod:`lifecycle.volume.connector` does with an ``iscsi``
connection (os-brick's iSCSI connector through its privsep daemon: login,
SCSI scan, the host block device; then logout and device removal).

The target is the kernel's LIO (configured with ``targetcli``, a file
backstore holding a pattern), the initiator open-iscsi (``iscsid``,
``iscsiadm``), both on 127.0.0.1. That needs, from the kernel, configfs,
the LIO core, its iSCSI fabric and file backstore, the iSCSI/TCP
initiator and SCSI disks -- built in, or as modules this test loads.

What is missing decides the outcome:

* a kernel feature this machine cannot have (not built in, and not a
  loadable module -- e.g. a kernel with ``CONFIG_MODULES`` off): the test
  is **skipped, under CI=true as well**, with the exact list (kernel
  release, each feature with its ``CONFIG_`` option as the running kernel's
  configuration states it). A CI job cannot change its runner's kernel, so
  failing would only make CI permanently red, while the skip reason is
  printed by ``pytest -ra`` (tools/run-tests.sh) in every run. Set
  ``LIFECYCLE_REQUIRE_ISCSI=1`` on a runner whose kernel has them: then a
  missing feature fails;
* what can be installed or started (``targetcli``, ``iscsiadm``,
  ``iscsid``: bindep.txt's targetcli-fb and open-iscsi) or root: fails
  under CI=true (``tests.conftest.require``), skips elsewhere.
"""

import gzip
import os
import shutil
import subprocess
import time
import uuid

import pytest

from lifecycle.privsep import block
from lifecycle.volume import connector
from tests.conftest import IN_CI
from tests.conftest import require
from tests.functional.conftest import qemu_io

pytestmark = pytest.mark.slow

MiB = 1024 * 1024
LUN_SIZE = 8 * MiB
PORTAL = '127.0.0.1:3260'
HOST = 'host-iscsi'
REQUIRE_KERNEL = os.environ.get('LIFECYCLE_REQUIRE_ISCSI', '').lower() in (
    '1', 'true', 'yes')

# (feature, kernel option, module, what shows it is there); the last is
# None for what only the kernel configuration tells.
KERNEL_FEATURES = (
    ('configfs', 'CONFIG_CONFIGFS_FS', 'configfs', '/sys/kernel/config'),
    ('LIO target core', 'CONFIG_TARGET_CORE', 'target_core_mod',
     '/sys/kernel/config/target'),
    ('LIO iSCSI target', 'CONFIG_ISCSI_TARGET', 'iscsi_target_mod',
     '/sys/kernel/config/target/iscsi'),
    ('LIO file backstore', 'CONFIG_TCM_FILEIO', 'target_core_file', None),
    ('SCSI disks', 'CONFIG_BLK_DEV_SD', 'sd_mod', '/sys/bus/scsi/drivers/sd'),
    ('iSCSI initiator over TCP', 'CONFIG_ISCSI_TCP', 'iscsi_tcp',
     '/sys/class/iscsi_transport/tcp'),
)


def kernel_config() -> dict[str, str] | None:
    """The running kernel's configuration (``CONFIG_X`` -> ``y``/``m``/
    ``n``), from /proc/config.gz or /boot; None when neither exists."""
    release = os.uname().release
    for path, opener in (('/proc/config.gz', gzip.open),
                         ('/boot/config-%s' % release, open)):
        try:
            with opener(path, 'rt') as f:
                text = f.read()
        except OSError:
            continue
        config = {}
        for line in text.splitlines():
            if line.startswith('CONFIG_') and '=' in line:
                name, _sep, value = line.partition('=')
                config[name] = value
            elif line.startswith('# CONFIG_') and line.endswith(
                    ' is not set'):
                config[line[2:-len(' is not set')]] = 'n'
        return config
    return None


def _modprobe(module: str) -> None:
    if shutil.which('modprobe') and os.geteuid() == 0:
        subprocess.run(['modprobe', module], capture_output=True,
                       timeout=60)


def missing_kernel_features() -> list[str]:
    """What the kernel lacks for the test, each as ``feature (CONFIG_X
    state)``; modules the kernel could load are loaded first."""
    config = kernel_config()
    modules = (config or {}).get('CONFIG_MODULES') == 'y'
    missing = []
    for feature, option, module, present in KERNEL_FEATURES:
        state = None if config is None else config.get(option, 'n')
        if present is not None and not os.path.exists(present):
            if state in ('m', None) and modules:
                _modprobe(module)
        if present is not None and os.path.exists(present):
            continue
        if present is None and state in ('y', 'm', None):
            continue  # only configuration tells; targetcli checks for real
        if state is None:
            why = 'not present; kernel configuration not readable'
        elif state == 'n':
            why = '%s is not set' % option
        elif state == 'm' and not modules:
            why = '%s=m but CONFIG_MODULES is not set' % option
        elif state == 'm':
            why = '%s=m but modprobe %s did not load it' % (option, module)
        else:
            why = '%s=y but %s is missing' % (option, present)
        missing.append('%s (%s)' % (feature, why))
    if missing and config is not None and not modules:
        missing.append('no module can be loaded (CONFIG_MODULES is not set)')
    return missing


@pytest.fixture(scope='module')
def iscsi_host():
    """This host as LIO target and open-iscsi initiator; iscsid started
    for the module when none runs."""
    missing = missing_kernel_features()
    if missing:
        message = ('iSCSI through os-brick needs a kernel with LIO and the '
                   'iSCSI initiator; kernel %s lacks: %s'
                   % (os.uname().release, '; '.join(missing)))
        if REQUIRE_KERNEL:
            pytest.fail(message + ' (LIFECYCLE_REQUIRE_ISCSI is set)',
                        pytrace=False)
        pytest.skip(message + (' (a kernel feature, not a service: skipped '
                               'under CI=true too)' if IN_CI else ''))
    require(os.geteuid() == 0, 'root (LIO configuration, iSCSI login)')
    for tool in ('targetcli', 'iscsiadm', 'iscsid'):
        require(shutil.which(tool) is not None,
                '%s (bindep.txt: targetcli-fb, open-iscsi)' % tool)
    daemon = None
    probe = subprocess.run(['iscsiadm', '-m', 'session'],
                           capture_output=True, text=True, timeout=30)
    if 'iscsid' in probe.stderr and probe.returncode not in (0, 21):
        # Not running (no systemd socket activation here): one of our own.
        daemon = subprocess.Popen(['iscsid', '-f'],
                                  stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        time.sleep(1)
        require(daemon.poll() is None, 'iscsid (it exited at start)')
    try:
        yield
    finally:
        if daemon is not None:
            daemon.terminate()
            daemon.wait(timeout=30)


def _targetcli(*args: str) -> str:
    proc = subprocess.run(['targetcli', *args], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, (args, proc.stdout + proc.stderr)
    return proc.stdout


def _sessions() -> str:
    proc = subprocess.run(['iscsiadm', '-m', 'session'], capture_output=True,
                          text=True, timeout=30)
    # 21: no active sessions.
    assert proc.returncode in (0, 21), proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture
def lio_target(iscsi_host, tmp_path):
    """An iSCSI target on 127.0.0.1:3260 with one LUN (a file: 1 MiB of
    0x5a, then zeros), exported to this host's initiator name as os-brick
    reports it."""
    backing = tmp_path / 'lun0.img'
    with open(backing, 'wb') as f:
        f.write(b'\x5a' * MiB)
        f.truncate(LUN_SIZE)
    suffix = uuid.uuid4().hex[:8]
    name = 'lifecycle-%s' % suffix
    iqn = 'iqn.2003-01.org.linux-iscsi.lifecycle:%s' % suffix
    initiator = connector.connector_properties(HOST).get('initiator')
    assert initiator, 'os-brick found no initiator name'
    _targetcli('/backstores/fileio', 'create', 'name=%s' % name,
               'file_or_dev=%s' % backing, 'size=%d' % LUN_SIZE,
               'write_back=false')
    try:
        _targetcli('/iscsi', 'create', iqn)
        tpg = '/iscsi/%s/tpg1' % iqn
        _targetcli(tpg + '/luns', 'create', '/backstores/fileio/%s' % name)
        _targetcli(tpg + '/acls', 'create', initiator)
        yield {'target_portal': PORTAL, 'target_iqn': iqn, 'target_lun': 0,
               'target_discovered': False, 'access_mode': 'rw',
               'encrypted': False}
    finally:
        subprocess.run(['targetcli', '/iscsi', 'delete', iqn],
                       capture_output=True, timeout=120)
        subprocess.run(['targetcli', '/backstores/fileio', 'delete', name],
                       capture_output=True, timeout=120)


def test_iscsi_volume_connects_and_disconnects_through_os_brick(lio_target):
    volume_id = str(uuid.uuid4())
    info = {'driver_volume_type': 'iscsi', 'data': lio_target}
    disk = connector.connect(info, volume_id, HOST)
    path = disk.path
    try:
        assert isinstance(path, str), path
        assert os.path.realpath(path).startswith('/dev/sd'), path
        assert lio_target['target_iqn'] in _sessions()
        assert block.device_size(path) == LUN_SIZE
        # The target's data, read through the device the domain opens.
        qemu_io(path, 'read -P 0x5a 0 1M', fmt='raw')
        qemu_io(path, 'read -P 0 1M 1M', fmt='raw')
    finally:
        connector.disconnect(info, volume_id, HOST)
    assert not os.path.exists(path)
    assert lio_target['target_iqn'] not in _sessions()


def test_kernel_features_are_reported_exactly():
    """What the skip reason names comes from the running kernel's
    configuration, feature by feature."""
    config = kernel_config()
    if config is None:
        pytest.skip('no kernel configuration (/proc/config.gz, /boot) to '
                    'compare with')
    missing = missing_kernel_features()
    for feature, option, _module, present in KERNEL_FEATURES:
        listed = [m for m in missing if m.startswith(feature + ' (')]
        if config.get(option, 'n') == 'n':
            assert listed == ['%s (%s is not set)' % (feature, option)], (
                missing)
        elif present is not None and os.path.exists(present):
            assert not listed, missing
