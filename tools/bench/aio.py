"""The all-in-one inside the benchmark process, started exactly as the
functional tests' ``make_aio`` fixture does (``CONF`` overrides, then
``AllInOne().start()``), with the service log in a file."""

import contextlib
import os

from oslo_config import cfg
from oslo_log import log as logging

from lifecycle.cmd import aio as aio_cmd
from lifecycle.conf import CONF

_configured = False


def setup_logging(log_file: str, debug: bool = False) -> None:
    """Parse an empty command line (no config files) and send the service
    log to ``log_file`` at INFO, as a deployed service would log."""
    global _configured
    if not _configured:
        logging.register_options(CONF)
        CONF([], project='lifecycle', default_config_files=[])
        _configured = True
    CONF.set_override('log_file', log_file)
    CONF.set_override('debug', debug)
    CONF.set_override('use_stderr', False)
    logging.setup(CONF, 'lifecycle')


def base_overrides(state_dir: str, uri: str, hosts: list[str], *,
                   vcpus: int, memory_mb: int) -> dict:
    return {
        (None, 'transport_url'): 'inproc://',
        # The OS-less guest never answers an ACPI shutdown: power off hard.
        (None, 'shutdown_timeout'): 0,
        ('aio', 'state_dir'): state_dir,
        ('aio', 'hosts'): hosts,
        ('aio', 'host_vcpus'): vcpus,
        ('aio', 'host_memory_mb'): memory_mb,
        ('api', 'port'): 0,
        ('libvirt', 'connection_uri'): uri,
        ('libvirt', 'fall_back_to_test_driver'): False,
        ('image', 'default_image_size_mb'): 64,
        ('database', 'connection'): None,
    }


@contextlib.contextmanager
def running_aio(overrides: dict):
    """An all-in-one for the duration of the block; guests it leaves on
    libvirt are undefined and every override is cleared afterwards."""
    for (group, name), value in overrides.items():
        CONF.set_override(name, value, group=group)
    aio = None
    try:
        aio = aio_cmd.AllInOne().start()
        yield aio
    finally:
        if aio is not None:
            for host in aio.hosts:
                with contextlib.suppress(Exception):
                    for uuid in aio.driver.list_instance_uuids(host):
                        aio.driver.undefine(uuid)
            aio.stop()
            with contextlib.suppress(Exception):
                aio.driver.close()
        for group, name in overrides:
            with contextlib.suppress(cfg.NoSuchOptError):
                CONF.clear_override(name, group=group)


def conductor_stats(aio) -> dict:
    for svc in aio.services:
        stats = getattr(svc.manager, 'stats', None)
        if stats is not None:
            return dict(stats)
    return {}


def compute_manager(aio, host: str):
    for svc in aio.services:
        if getattr(svc.manager, 'host', None) == host:
            return svc.manager
    raise KeyError(host)


def storage_dir(aio, group: str) -> str:
    return os.path.join(aio.state_dir, 'storage', group)
