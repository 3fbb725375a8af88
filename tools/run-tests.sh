#!/bin/bash
# Run the whole shelve-lifecycle test suite (every tier, slow ones included).
#
#   tools/run-tests.sh [PYTEST ARGS...]
#
# Prepares the machine with tools/setup.sh, lints with ruff, checks the import
# layers with import-linter and for duplicate code with pylint's similarity
# checker, then runs pytest from .venv. Extra arguments go to pytest (e.g. -x, -k NAME, tests/unit).
# LIFECYCLE_TEST_TIMEOUT sets the per-test timeout in seconds (default 900).
# Exit status: pytest's; a run that collects no tests fails (1).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

bash tools/setup.sh

echo "run-tests: ruff check lifecycle filters tests tools"
if ! .venv/bin/ruff check --no-cache lifecycle filters tests tools; then
    echo "run-tests: FAILED: lint errors (see above; many are fixed by" \
         "'.venv/bin/ruff check --fix lifecycle filters tests tools')" >&2
    exit 1
fi

echo "run-tests: lint-imports (the layers of .importlinter)"
if ! .venv/bin/lint-imports --no-cache; then
    echo "run-tests: FAILED: an import breaks the layers of .importlinter" >&2
    exit 1
fi

echo "run-tests: pylint duplicate-code (.pylintrc) lifecycle filters"
if ! .venv/bin/pylint --rcfile=.pylintrc lifecycle filters; then
    echo "run-tests: FAILED: the same lines in two modules (see above);" \
         "give the job one home and call it from both" >&2
    exit 1
fi

timeout=${LIFECYCLE_TEST_TIMEOUT:-900}
echo "run-tests: pytest (per-test timeout ${timeout}s) $*"
rc=0
.venv/bin/python -m pytest -p no:cacheprovider --timeout="$timeout" -ra \
    --durations=25 \
    "$@" || rc=$?

if [ "$rc" -eq 5 ]; then
    echo "run-tests: FAILED: pytest collected no tests" >&2
    exit 1
fi
if [ "$rc" -ne 0 ]; then
    echo "run-tests: FAILED (pytest exit status $rc)" >&2
else
    echo "run-tests: OK"
fi
exit "$rc"
