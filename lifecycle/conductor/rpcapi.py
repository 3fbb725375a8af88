"""Client side of the conductor RPC API (scheduling and orchestration of
operations that have no host yet: build, unshelve of an offloaded instance,
delete of an offloaded instance).

API version history:

* 1.0 - Initial version: build_instance, unshelve_instance,
  delete_offloaded_instance.
* 1.1 - Add offload_retained_disk.
"""

import oslo_messaging as messaging

from lifecycle import rpc

TOPIC = 'lifecycle-conductor'


class ConductorAPI:
    VERSION = '1.1'

    def __init__(self, transport: messaging.Transport,
                 topic: str = TOPIC) -> None:
        self.client = rpc.get_client(
            transport, messaging.Target(topic=topic, version=self.VERSION))

    def build_instance(self, ctxt, instance_uuid: str,
                       request_spec: dict) -> None:
        self.client.prepare(version='1.0').cast(
            ctxt, 'build_instance', instance_uuid=instance_uuid,
            request_spec=request_spec)

    def unshelve_instance(self, ctxt, instance_uuid: str,
                          request_spec: dict) -> None:
        self.client.prepare(version='1.0').cast(
            ctxt, 'unshelve_instance', instance_uuid=instance_uuid,
            request_spec=request_spec)

    def delete_offloaded_instance(self, ctxt, instance_uuid: str) -> None:
        self.client.prepare(version='1.0').cast(
            ctxt, 'delete_offloaded_instance', instance_uuid=instance_uuid)

    def offload_retained_disk(self, ctxt, instance_uuid: str) -> None:
        """Escalate a partial offload to a full one; the caller has moved
        the instance to task_state ``shelving_image_uploading``."""
        self.client.prepare(version='1.1').cast(
            ctxt, 'offload_retained_disk', instance_uuid=instance_uuid)
