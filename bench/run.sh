#!/usr/bin/env bash
# The benchmark from a fresh clone, one command: set up .venv (scripts/setup.sh), then run bench/run.py
# with the arguments given (--quick, --smoke, --levers, --workloads mlp,cnn, ...). PyTorch rows appear
# when torch is installed in .venv (.venv/bin/pip install torch).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python bench/run.py "$@"
