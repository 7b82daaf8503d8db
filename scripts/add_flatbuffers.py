"""Adds the LiteRT flatbuffer (`model.tflite`, parity-checked) to existing export folders.

    python scripts/add_flatbuffers.py checkpoints/srgan checkpoints/colorize ...

For exports made before the exports wrote flatbuffers themselves (`common.litert`):
each folder's `config.json` says which model it is (`model`: srgan or colorize),
gets its `litert` record, and one line per folder says what was done or why not.
Exit status 1 when a folder is not an export of this project.
"""
from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUTPUTS = {"srgan": "sr", "colorize": "rgb"}


def main(folders: list[str]) -> int:
    from common.litert import add_flatbuffer

    status = 0
    for folder in folders:
        try:
            with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
                kind = json.load(f).get("model")
        except (OSError, ValueError, AttributeError) as e:
            print(f"error: {folder}: cannot read its config.json ({e})", file=sys.stderr)
            status = 1
            continue
        if kind not in OUTPUTS:
            print(f"error: {folder}: config.json names model {kind!r}, not one of {sorted(OUTPUTS)}", file=sys.stderr)
            status = 1
            continue
        print(f"{folder}: {add_flatbuffer(folder, OUTPUTS[kind])}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
