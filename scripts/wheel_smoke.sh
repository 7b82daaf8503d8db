#!/usr/bin/env bash
# Wheel smoke check: builds the wheel, installs it (not editable, with its dependencies,
# the CPU TensorFlow extra) into a fresh virtual environment, and runs README command 1's
# job from a folder outside the checkout: the installed tool must find its bundled models
# and write one 896x896 PNG per sample frame.
#
#   bash scripts/wheel_smoke.sh [PYTHON]     # PYTHON: the interpreter for the venv (python3)
#
# pip's cache (and any configured local index) is used as usual, so a rerun does not download
# TensorFlow again. It took 6m22s, then 5m22s rerun, on a busy 2-core machine (mostly installing TensorFlow),
# so it is not part of scripts/test.sh (the everyday test command); .ci/run runs it after the suite.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${1:-python3}"
work="$(mktemp -d "${TMPDIR:-/tmp}/wheel-smoke.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "wheel smoke: building the wheel"
# Built from a copy of the tracked files so the checkout gets no build/ or egg-info.
mkdir "$work/src"
git -C "$repo" ls-files -z | (cd "$repo" && xargs -0 cp --parents -t "$work/src")
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip wheel -q --no-deps -w "$work/dist" "$work/src"
wheel="$(ls "$work"/dist/astro_colorize_sr-*.whl)"

echo "wheel smoke: installing $(basename "$wheel")[cpu] into a fresh venv"
"$work/venv/bin/python" -m pip install -q "$wheel[cpu]"

echo "wheel smoke: README command 1 from $work/elsewhere"
mkdir "$work/elsewhere"
cd "$work/elsewhere"
# The installed package must be what runs, not the checkout: no PYTHONPATH, cwd outside it.
env -u PYTHONPATH -u ASTRO_MODELS_DIR "$work/venv/bin/python" -c \
  "import pipeline, sys; assert pipeline.__file__.startswith('$work/venv'), pipeline.__file__"
# The exports' LiteRT flatbuffers are package data too.
env -u PYTHONPATH -u ASTRO_MODELS_DIR "$work/venv/bin/python" -c \
  "import os, pipeline.bundled as b; d = b.installed_dir(); \
assert all(os.path.isfile(os.path.join(d, k, 'model.tflite')) for k in ('colorize', 'srgan')), d"
env -u PYTHONPATH -u ASTRO_MODELS_DIR "$work/venv/bin/python" -m pipeline.run \
  --input "$repo/samples" --output "$work/elsewhere/out" 2>&1 | tee "$work/run.log"
# `--engine auto` takes the engine measured faster on this kind of CPU (common.litert.xnnpack_preferred);
# the run must say which, and the installed flatbuffers must load on the LiteRT engine either way.
grep -qE "LiteRT XNNPACK|TensorFlow SavedModel" "$work/run.log"
env -u PYTHONPATH -u ASTRO_MODELS_DIR "$work/venv/bin/python" -c \
  "from pipeline.models import load_found; assert all(load_found(None, k, engine='litert').engine == 'litert' \
for k in ('colorize', 'srgan'))"
"$work/venv/bin/python" - "$work/elsewhere/out" <<'EOF'
import os, sys
from PIL import Image
out = sys.argv[1]
# Hidden files (the run's .colourise-manifest.jsonl) are bookkeeping, not outputs.
names = sorted(n for n in os.listdir(out) if not n.startswith("."))
expected = ["ic418_grey_colour_x4.png", "m51_hst_wfpc2_colour_x4.png", "n6369_grey_colour_x4.png"]
assert names == expected, names
for name in names:
    with Image.open(os.path.join(out, name)) as im:
        assert im.size == (896, 896) and im.mode == "RGB", (name, im.size, im.mode)
assert os.path.exists(os.path.join(out, ".colourise-manifest.jsonl"))
print("wheel smoke: OK, 3 outputs of 896x896 written by the installed tool")
EOF
