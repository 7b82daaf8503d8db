#!/usr/bin/env bash
# Creates .venv (if missing), installs the project with the CPU TensorFlow, the test
# tools, the TensorLayer and Dask extras, and runs the whole test suite.
# The README's second command and CI (.ci/run) both run exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[cpu,test,tl,dask]"
exec .venv/bin/python -m pytest -q tests "$@"
