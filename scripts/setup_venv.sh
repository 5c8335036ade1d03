#!/usr/bin/env bash
# One set-up command: a virtual environment in .venv with the pinned dependencies and
# binseg_ros installed in editable mode. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r requirements.txt -r requirements-ros.txt
.venv/bin/python -m pip install --quiet --no-deps -e .
echo "ready: source .venv/bin/activate"
