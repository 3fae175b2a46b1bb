#!/usr/bin/env bash
# Quickstart, command 2: install what is needed, then run the whole test suite, on every core
# (pytest-xdist; the tests of one file run in one process, so a file's shared fixtures are built once).
# Extra arguments go to pytest (e.g. scripts/test.sh -k grammar; -n 0 runs in one process).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -n "${TRAINC_TEST_WORKERS:-auto}" --dist loadfile "$@"
