#!/usr/bin/env bash
# Quickstart, command 2: install what is needed, then run the whole test suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -k grammar).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
