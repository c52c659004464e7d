#!/usr/bin/env bash
# README command 1: set up and run the demo building (simulated devices, local buffering).
# Extra arguments go to `lintel demo`, e.g. scripts/demo.sh --broker mqtt://127.0.0.1:1883
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/lintel demo "$@"
