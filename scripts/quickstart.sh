#!/usr/bin/env bash
# Quickstart, command 1: install what is needed, then train examples/digits.train.
# Results land in runs/digits/ (metrics.jsonl, summary.json, model.safetensors).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/trainc run examples/digits.train --out runs/digits "$@"
