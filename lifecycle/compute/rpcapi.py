"""Client side of the compute RPC API.

Method names and arguments follow Nova's compute RPC API for the same
operations; instances travel as their UUID and are read from the database on
the receiving side.

API version history:

* 1.0 - Initial version: build_and_run_instance, start_instance,
  stop_instance, shelve_instance, shelve_offload_instance,
  unshelve_instance, terminate_instance.
* 1.1 - Add offload_retained_disk (full offload of a partially offloaded
  instance).
* 1.2 - shelve_instance takes keep_memory (hibernate-shelve).
"""

import oslo_messaging as messaging

from lifecycle import rpc

TOPIC = 'lifecycle-compute'


class ComputeAPI:
    VERSION = '1.2'

    def __init__(self, transport: messaging.Transport,
                 topic: str = TOPIC) -> None:
        self.client = rpc.get_client(
            transport, messaging.Target(topic=topic, version=self.VERSION))

    def _at(self, host: str, timeout: float | None = None):
        return self.client.prepare(server=host, version='1.0',
                                   timeout=timeout)

    def build_and_run_instance(self, ctxt, host: str,
                               instance_uuid: str) -> None:
        self._at(host).cast(ctxt, 'build_and_run_instance',
                            instance_uuid=instance_uuid)

    def start_instance(self, ctxt, host: str, instance_uuid: str) -> None:
        self._at(host).cast(ctxt, 'start_instance',
                            instance_uuid=instance_uuid)

    def stop_instance(self, ctxt, host: str, instance_uuid: str,
                      clean_shutdown: bool = True) -> None:
        self._at(host).cast(ctxt, 'stop_instance', instance_uuid=instance_uuid,
                            clean_shutdown=clean_shutdown)

    def shelve_instance(self, ctxt, host: str, instance_uuid: str,
                        clean_shutdown: bool = True,
                        keep_memory: bool | None = None) -> None:
        if keep_memory is None:
            self._at(host).cast(ctxt, 'shelve_instance',
                                instance_uuid=instance_uuid,
                                clean_shutdown=clean_shutdown)
            return
        self.client.prepare(server=host, version='1.2').cast(
            ctxt, 'shelve_instance', instance_uuid=instance_uuid,
            clean_shutdown=clean_shutdown, keep_memory=keep_memory)

    def shelve_offload_instance(self, ctxt, host: str, instance_uuid: str,
                                clean_shutdown: bool = True) -> None:
        self._at(host).cast(ctxt, 'shelve_offload_instance',
                            instance_uuid=instance_uuid,
                            clean_shutdown=clean_shutdown)

    def unshelve_instance(self, ctxt, host: str, instance_uuid: str,
                          request_spec: dict | None = None,
                          timeout: float | None = None) -> None:
        """A call when ``timeout`` is given (the conductor tries the next
        host when the compute fails), else a cast."""
        cctxt = self._at(host, timeout)
        method = cctxt.call if timeout else cctxt.cast
        method(ctxt, 'unshelve_instance', instance_uuid=instance_uuid,
               request_spec=request_spec or {})

    def offload_retained_disk(self, ctxt, host: str, instance_uuid: str,
                              next_task_state: str | None = None,
                              timeout: float | None = None) -> None:
        """Upload the retained disk and free it. A call when ``timeout``
        is given (the conductor waits to place the instance elsewhere),
        else a cast."""
        cctxt = self.client.prepare(server=host, version='1.1',
                                    timeout=timeout)
        method = cctxt.call if timeout else cctxt.cast
        method(ctxt, 'offload_retained_disk', instance_uuid=instance_uuid,
               next_task_state=next_task_state)

    def terminate_instance(self, ctxt, host: str, instance_uuid: str) -> None:
        self._at(host).cast(ctxt, 'terminate_instance',
                            instance_uuid=instance_uuid)
