"""An all-in-one wired to the session's Cinder, shared by the
volume-backed tests: the Nova responder that Cinder's attachment calls
reach answers from this all-in-one's database."""


from lifecycle import exception
from lifecycle.compute import volumes


def lookup_in(aio):
    """The responder's answer: which attachment of ``volume_id`` the
    instance uses, per the lifecycle database."""
    def lookup(server_id, volume_id):
        try:
            instance = aio.db.instance_get(server_id)
        except exception.InstanceNotFound:
            return None
        if instance.task_state == 'deleting':
            return None
        sysmeta = instance.system_metadata
        if sysmeta.get(volumes.ROOT_VOLUME_ID) != volume_id:
            return None
        return sysmeta.get(volumes.ROOT_ATTACHMENT_ID)
    return lookup


def start(make_aio, cinder_server, *, uri: str = 'test:///default',
          extra: dict | None = None):
    """An all-in-one on ``uri`` using Cinder; the responder answers for it
    until :func:`stop`."""
    overrides = dict(cinder_server.overrides())
    # Two m1.tiny fit per host: easy to fill a storage group.
    overrides.update({('aio', 'host_memory_mb'): 1024})
    overrides.update(extra or {})
    aio = make_aio(uri, extra=overrides)
    cinder_server.nova.lookup = lookup_in(aio)
    return aio


def stop(cinder_server) -> None:
    cinder_server.nova.lookup = lambda server_id, volume_id: None


