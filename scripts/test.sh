#!/usr/bin/env bash
# README command 2: set up and run the whole test suite (lint, types, import contract, pytest).
# Extra arguments go to pytest, e.g. scripts/test.sh -k outbox
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff"; ruff check gateway drivers tests bench; ruff format --check gateway drivers tests bench
echo "== mypy"; mypy
echo "== import contracts"; lint-imports
echo "== pytest"; exec pytest -n auto --durations=25 "$@"
