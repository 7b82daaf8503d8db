#!/usr/bin/env bash
# Trains the default colouriser (checkpoints/colorize) with Keras model.fit on JAX,
# e.g. on a GPU machine that has JAX but no TensorFlow. See checkpoints/MODEL_CARD.md.
#
#   scripts/train_colorize_gpu.sh DATA_DIR WORKDIR [ITERATIONS] [BATCH_SIZE]
#
# DATA_DIR is a `python -m data.prepare` output. The learning rate drops to 0.3x
# at 60 % and again at 85 % of ITERATIONS. Then, where TensorFlow is installed:
#
#   python -m colorize.export --workdir WORKDIR --checkpoint best --output checkpoints/colorize --overwrite
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n 4,5p "$0" >&2
  exit 2
fi
data=$1 workdir=$2 iterations=${3:-12000} batch=${4:-16}
export KERAS_BACKEND=${KERAS_BACKEND:-jax}
exec python3 -m colorize.train --data_dir "$data" --workdir "$workdir" \
  --backbone compact --global_context --nooutput_batchnorm \
  --batch_size "$batch" --iterations "$iterations" \
  --lr_decay_steps "$((iterations * 6 / 10)),$((iterations * 85 / 100))" --lr_decay_factor 0.3 \
  --eval_every "$((iterations / 12 > 0 ? iterations / 12 : 1))" --checkpoint_every 1000 --log_every 100 \
  "${@:5}"
