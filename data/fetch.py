"""`python -m data.fetch`: real training images, with their credits, into one folder.

The paper (sec. 3) trained on ~2000 Hubble Heritage and hubblesite images. Two
sources here:

- `--source stellarium`: the 555 nebula photographs in Debian's
  `stellarium-data` package (`nebulae/default/`), each with its credit from
  `textures.json`. Found via `--stellarium_dir` (a folder or the .deb), else an
  installed `/usr/share/stellarium`, else `apt-get download` into `--cache_dir`.
- `--source url-list FILE`: a list of image URLs (e.g. ESA/Hubble full-size
  images), one per line as `URL [SHA256] [credit ...]`; downloads resume, retry
  and are verified.

Files are copied byte for byte (never re-encoded). `OUT/sources.json` gets one
record per file: file, source, origin, credit, info_url, sha256, format, width,
height, mode ("rgb" | "rgba" | "palette" | "grey"), grey, chroma and
true_colour. Palette and greyscale images are flagged, since colour targets
must be true colour (`--only_true_colour` leaves them out). Images held out for
the cross-domain evaluation (`data.domains.is_held_out_credit` on the credit:
Hubble's) are not copied unless `--nohold_out`; their records say `held_out: true`.

Re-running is idempotent: a file whose sha256 already matches is left alone; a
different file already at a target name is reported and kept unless
`--overwrite`. Exit status 1 when anything failed or conflicted.
"""
from __future__ import annotations

import sys
from typing import Optional, Sequence

from absl import app, flags

from data.fetching import FetchConfig, fetch
from data.sources import FetchError

FLAGS = flags.FLAGS
flags.DEFINE_enum("source", None, ["stellarium", "url-list"], "Where the images come from.")
flags.DEFINE_string("out", None, "Output folder for the images and sources.json.")
flags.DEFINE_string("url_list", "", "File of URLs for --source url-list (may also be given as the positional FILE).")
flags.DEFINE_string("stellarium_dir", "",
                    "Stellarium nebulae folder (holding textures.json), an unpacked stellarium-data package root, "
                    "or a stellarium-data .deb. Default: installed /usr/share/stellarium, else apt-get download.")
flags.DEFINE_string("cache_dir", "~/.cache/astro-colorize-sr", "Where a downloaded .deb is kept and unpacked.")
flags.DEFINE_integer("limit", 0, "Stop after this many images are in --out (0: no limit).")
flags.DEFINE_integer("min_size", 0,
                     "Skip images whose shorter side is below this many px. The paper (sec. 3) drops images smaller "
                     "than a 2040x1356 tile; data.prepare makes that cut, so the default keeps everything.")
flags.DEFINE_boolean("only_true_colour", False,
                     "Skip palette and greyscale images (colour targets must be true colour).")
flags.DEFINE_boolean("hold_out", True,
                     "Leave out the Stellarium images held out for the cross-domain evaluation (Hubble-credited, "
                     "data.domains.is_held_out_credit): not copied, recorded in sources.json with held_out: true.")
flags.DEFINE_boolean("overwrite", False, "Replace an existing different file at a target name (default: keep it).")
flags.DEFINE_integer("retries", 3, "Extra attempts per URL after network errors, 5xx and truncated bodies.")
flags.DEFINE_float("timeout", 60.0, "Seconds per network operation.")
flags.DEFINE_float("backoff", 1.0, "The k-th retry waits backoff * 2**(k-1) seconds.")


def main(argv: Sequence[str]) -> int:
    positional = list(argv[1:])
    if not FLAGS.source or not FLAGS.out:
        raise app.UsageError("--source and --out are required")
    url_list: Optional[str] = FLAGS.url_list
    if FLAGS.source == "url-list":
        if not url_list and len(positional) == 1:
            url_list = positional.pop()
        if not url_list:
            raise app.UsageError("--source url-list needs a FILE of URLs (positional or --url_list)")
    if positional:
        raise app.UsageError(f"unexpected arguments: {' '.join(positional)}")
    config = FetchConfig(
        source=FLAGS.source, out=FLAGS.out, url_list=url_list or "", stellarium_dir=FLAGS.stellarium_dir or "",
        cache_dir=FLAGS.cache_dir, limit=FLAGS.limit, min_size=FLAGS.min_size,
        only_true_colour=FLAGS.only_true_colour, hold_out=FLAGS.hold_out, overwrite=FLAGS.overwrite, retries=FLAGS.retries,
        timeout=FLAGS.timeout, backoff=FLAGS.backoff,
    )
    try:
        report = fetch(config, progress=sys.stderr.isatty())
    except (FetchError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for line in report.problems:
        print(line, file=sys.stderr)
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
