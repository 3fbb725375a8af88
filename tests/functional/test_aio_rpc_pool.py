"""The all-in-one applies ``[aio] executor_thread_pool_size`` to every
in-process RPC server (each compute host's and the conductor's)."""


def _pool_sizes(aio) -> dict[str, int]:
    # oslo.messaging's RPC server builds its worker pool at start, sized by
    # the override the service passed (futurist's ThreadPoolExecutor).
    return {svc.topic + ':' + svc.server:
            svc._rpc_server._work_executor._max_workers
            for svc in aio.services}


def test_every_rpc_server_of_the_all_in_one_gets_the_aio_pool_size(make_aio):
    aio = make_aio(extra={('aio', 'executor_thread_pool_size'): 3})

    sizes = _pool_sizes(aio)
    # Three compute hosts and the conductor.
    assert len(sizes) == 4, sizes
    assert set(sizes.values()) == {3}, sizes
