#!/bin/bash
# Install everything (tools/setup.sh), start the all-in-one service and walk
# through boot -> shelve -> unshelve -> delete against its REST API.
#
#   tools/quickstart.sh [CONFIG_FILE]     (default etc/lifecycle/lifecycle-aio.conf)
#
# The service is stopped when the walkthrough ends; the last lines say how to
# keep it running. Exit status: the walkthrough's (0 ok, 1 a step failed,
# 2 the service did not come up).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CONFIG=$(realpath "${1:-etc/lifecycle/lifecycle-aio.conf}")

bash tools/setup.sh

LOG=$(mktemp /tmp/lifecycle-aio.XXXXXX.log)
echo "quickstart: starting lifecycle-aio --config-file $CONFIG (log: $LOG)"
.venv/bin/lifecycle-aio --config-file "$CONFIG" >"$LOG" 2>&1 &
AIO_PID=$!
stop_aio() {
    kill "$AIO_PID" 2>/dev/null && wait "$AIO_PID" 2>/dev/null || true
}
trap stop_aio EXIT

rc=0
.venv/bin/lifecycle-walkthrough --config-file "$CONFIG" || rc=$?
if [ "$rc" -ne 0 ]; then
    echo "quickstart: walkthrough failed ($rc); service log follows" >&2
    tail -n 40 "$LOG" >&2
    exit "$rc"
fi
grep -E "WARNING .*(test:///default|falling back)" "$LOG" || true

cat <<TXT

The all-in-one is stopped now. To keep it running:

    .venv/bin/lifecycle-aio --config-file $CONFIG

and drive it with the tools you already have, for example openstacksdk:

    .venv/bin/python - <<'PY'
    import openstack
    url = 'http://127.0.0.1:8774/v2.1'
    conn = openstack.connect(auth_type='none', auth={'endpoint': url},
                             compute_endpoint_override=url)
    image = next(iter(conn.compute.images()))
    server = conn.compute.create_server(name='demo', image_id=image.id,
                                        flavor_id='1', networks='none')
    server = conn.compute.wait_for_server(server)
    conn.compute.shelve_server(server)
    conn.compute.wait_for_server(server, status='SHELVED_OFFLOADED')
    conn.compute.unshelve_server(server)
    conn.compute.wait_for_server(server)
    conn.compute.delete_server(server)
    PY
TXT
