#!/usr/bin/env bash
# Creates .venv (if missing), installs the project with the CPU TensorFlow, the test
# tools, the TensorLayer and Dask extras, and runs the whole test suite.
# The README's second command and CI (.ci/run) both run exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[cpu,test,tl,dask]"
# Two pytest workers (pytest-xdist): much of the suite is single-threaded tracing, subprocess start-up
# and file I/O, so two share CI's 2 cores well (18 min instead of 25 here). Each worker is a TensorFlow
# process of 1-2 GB, hence a fixed 2 rather than one per core; `-n 0` after it runs serially.
exec .venv/bin/python -m pytest -q -n 2 tests "$@"
