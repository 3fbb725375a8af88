"""oslo.messaging plumbing shared by the RPC clients and servers.

Every message carries the request context (serialized as a dict) so the
receiving side acts on behalf of the same user and request id.
"""

import oslo_messaging as messaging
from oslo_config import cfg

from lifecycle import context as lc_context


class RequestContextSerializer(messaging.Serializer):
    def __init__(self, base: messaging.Serializer | None = None) -> None:
        self._base = base or messaging.NoOpSerializer()

    def serialize_entity(self, ctxt, entity):
        return self._base.serialize_entity(ctxt, entity)

    def deserialize_entity(self, ctxt, entity):
        return self._base.deserialize_entity(ctxt, entity)

    def serialize_context(self, ctxt: lc_context.RequestContext) -> dict:
        return ctxt.to_dict()

    def deserialize_context(self, ctxt: dict) -> lc_context.RequestContext:
        return lc_context.RequestContext.from_dict(ctxt)


def get_transport(conf: cfg.ConfigOpts,
                  url: str | None = None) -> messaging.Transport:
    return messaging.get_rpc_transport(conf, url=url)


def get_client(transport: messaging.Transport, target: messaging.Target,
               version_cap: str | None = None) -> messaging.RPCClient:
    retries = transport.conf.rpc_send_retries
    return messaging.get_rpc_client(transport, target,
                                    version_cap=version_cap,
                                    serializer=RequestContextSerializer(),
                                    retry=None if retries < 0 else retries)


def get_server(transport: messaging.Transport, target: messaging.Target,
               endpoints: list) -> messaging.rpc.server.RPCServer:
    # No executor named: the argument is deprecated, and oslo.messaging
    # picks threads unless eventlet monkey-patched the process (nothing
    # here does).
    return messaging.get_rpc_server(
        transport, target, endpoints,
        serializer=RequestContextSerializer(),
        access_policy=messaging.DefaultRPCAccessPolicy)
