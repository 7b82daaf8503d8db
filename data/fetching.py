"""The library of `python -m data.fetch`: real training images, with their credits, into one folder.

`fetch_stellarium` copies Debian `stellarium-data`'s nebula photographs,
`fetch_url_list` downloads a list of URLs; both keep `OUT/sources.json` (see
`data.sources`) and skip images held out for the cross-domain evaluation. The
sources themselves (finding Stellarium, downloading one URL, describing a file)
are `data.stellarium`, `data.downloads` and `data.sources`; the command line,
and what each setting means, is `data.fetch`. Nothing here reads flags.
"""
from __future__ import annotations

import dataclasses
import os

from common.files import atomic_write_bytes
from data import downloads, sources, stellarium
from data.domains import is_held_out_credit
from data.formats import is_image_file

STELLARIUM_ORIGIN = "stellarium-data:nebulae/default/"


@dataclasses.dataclass(frozen=True)
class FetchConfig:
    """Resolved settings of one `data.fetch` run."""

    source: str
    out: str
    url_list: str = ""
    stellarium_dir: str = ""
    cache_dir: str = "~/.cache/astro-colorize-sr"
    limit: int = 0
    min_size: int = 0
    only_true_colour: bool = False
    hold_out: bool = True
    overwrite: bool = False
    retries: int = 3
    timeout: float = 60.0
    backoff: float = 1.0


@dataclasses.dataclass
class FetchReport:
    """What a run did: per-status counts, one line per problem, the manifest path."""

    counts: dict = dataclasses.field(default_factory=dict)
    problems: list = dataclasses.field(default_factory=list)
    manifest: str = ""

    def add(self, status: str, item: str = "", message: str = "") -> None:
        self.counts[status] = self.counts.get(status, 0) + 1
        if message:
            self.problems.append(f"{status}: {item}: {message}")

    @property
    def kept(self) -> int:
        return sum(self.counts.get(k, 0) for k in ("copied", "downloaded", "replaced", "unchanged"))

    @property
    def ok(self) -> bool:
        return not (self.counts.get("failed") or self.counts.get("conflict"))

    def summary(self) -> str:
        parts = ", ".join(f"{v} {k}" for k, v in sorted(self.counts.items())) or "nothing to do"
        return f"{self.kept} image(s) in place ({parts}); manifest {self.manifest}"


def _filtered(info: dict, config: FetchConfig) -> str:
    """Why an image is left out by the filters, or ""."""
    if min(info["width"], info["height"]) < config.min_size:
        return f"{info['width']}x{info['height']} is smaller than --min_size {config.min_size}"
    if config.only_true_colour and not info["true_colour"]:
        return f"not true colour (mode {info['mode']}, grey {info['grey']})"
    return ""


def _place(staged: str, dest: str, digest: str, config: FetchConfig, move: bool) -> tuple[str, str]:
    """Puts verified bytes at `dest` unless a different file is there; returns (status, message).

    `staged` is renamed when `move` (a downloaded .part) and copied otherwise
    (a package file, which must stay as it is).
    """
    status = "copied"
    if os.path.exists(dest):
        if os.path.isfile(dest) and sources.sha256_file(dest) == digest:
            if move:
                os.unlink(staged)
            return "unchanged", ""
        if not config.overwrite or not os.path.isfile(dest):
            if move:
                os.unlink(staged)
            return "conflict", f"{dest} exists with different content; kept it (--overwrite replaces it)"
        status = "replaced"
    if move:
        os.replace(staged, dest)
        return ("downloaded" if status == "copied" else status), ""
    with open(staged, "rb") as f:
        atomic_write_bytes(dest, f.read())
    return status, ""


def _progress(items, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="img", disable=not enabled)


def fetch_stellarium(config: FetchConfig, progress: bool = False,
                     installed: str = "/usr/share/stellarium/nebulae/default") -> FetchReport:
    """Copies Stellarium's nebula photographs into `config.out` with their credits.

    Args:
        config: the run's settings (source "stellarium").
        progress: show a tqdm bar.
        installed: where an installed Stellarium keeps them (tests point it elsewhere).

    Returns:
        The run's report; `config.out/sources.json` is updated.

    Raises:
        sources.FetchError: no Stellarium folder can be found or downloaded, or
            the existing manifest is unreadable.
        ValueError: textures.json cannot be parsed.
    """
    folder = stellarium.locate_stellarium(config.stellarium_dir, os.path.expanduser(config.cache_dir), installed)
    with open(os.path.join(folder, "textures.json"), encoding="utf-8") as f:
        credits = stellarium.parse_textures_json(f.read(), os.path.join(folder, "textures.json"))
    os.makedirs(config.out, exist_ok=True)
    records = {r["file"]: r for r in sources.load_manifest(config.out)}
    on_disk = {n for n in os.listdir(folder) if is_image_file(n)}
    report = FetchReport()
    try:
        for name in _progress(sorted(set(credits) | on_disk), "stellarium", progress):
            if config.limit and report.kept >= config.limit:
                break
            if os.path.basename(name) != name or name.startswith("."):
                report.add("failed", name, "textures.json names a file outside the folder; ignored")
                continue
            src = os.path.join(folder, name)
            if not os.path.isfile(src):
                report.add("failed", name, "listed in textures.json but missing from the folder")
                continue
            try:
                info = sources.describe_image(src)
            except ValueError as e:
                report.add("failed", name, str(e))
                continue
            reason = _filtered(info, config)
            if reason:
                report.add("skipped")
                continue
            credit = credits.get(name, {"credit": "", "info_url": ""})
            digest = sources.sha256_file(src)
            record = {"file": name, "source": "stellarium", "origin": STELLARIUM_ORIGIN + name,
                      "credit": credit["credit"], "info_url": credit["info_url"], "sha256": digest, **info}
            if config.hold_out and is_held_out_credit(credit["credit"]):
                # Recorded, never copied: data.prepare also skips a held-out record whose file an older run left.
                report.add("held_out")
                records[name] = {**record, "held_out": True}
                continue
            status, message = _place(src, os.path.join(config.out, name), digest, config, move=False)
            report.add(status, name, message)
            if status != "conflict":
                records[name] = record
    finally:  # an interrupted run still records what it placed
        report.manifest = sources.save_manifest(config.out, list(records.values()))
    return report


def _target_name(url: str, records: dict, assigned: dict) -> str:
    """The file name for `url`: its earlier name if the manifest knows it, else one from the URL, de-duplicated."""
    for record in records.values():
        if record.get("origin") == url:
            return record["file"]
    name = downloads.name_from_url(url)
    owner = assigned.get(name.lower()) or (records.get(name) or {}).get("origin")
    if owner is not None and owner != url:
        name = downloads.with_suffix_hash(name, url)
    return name


def fetch_url_list(config: FetchConfig, progress: bool = False, sleep=None) -> FetchReport:
    """Downloads every URL of `config.url_list` into `config.out`.

    A URL whose file is already in place (sha256 equal to the list's checksum,
    or to the manifest's record for that URL) is not requested again.

    Args:
        config: the run's settings (source "url-list").
        progress: show a tqdm bar.
        sleep: replaces time.sleep between retries (tests).

    Returns:
        The run's report; `config.out/sources.json` is updated.

    Raises:
        sources.FetchError: the existing manifest is unreadable.
        ValueError: the URL list cannot be read or has a malformed checksum.
    """
    try:
        with open(config.url_list, encoding="utf-8") as f:
            entries = downloads.parse_url_list(f.read())
    except OSError as e:
        raise ValueError(f"{config.url_list}: cannot read the URL list ({e.strerror})") from e
    os.makedirs(config.out, exist_ok=True)
    records = {r["file"]: r for r in sources.load_manifest(config.out)}
    assigned: dict[str, str] = {}
    report = FetchReport()
    try:
        for entry in _progress(entries, "download", progress):
            if config.limit and report.kept >= config.limit:
                break
            _fetch_url(entry, config, records, assigned, report, sleep)
    finally:  # an interrupted run still records what it placed
        report.manifest = sources.save_manifest(config.out, list(records.values()))
    return report


def _fetch_url(entry: dict, config: FetchConfig, records: dict, assigned: dict, report: FetchReport,
               sleep=None) -> None:
    """One line of the URL list: skip it if already in place, else download, verify and place it."""
    url = entry["url"]
    try:
        name = _target_name(url, records, assigned)
    except ValueError as e:
        report.add("failed", url, str(e))
        return
    assigned[name.lower()] = url
    dest = os.path.join(config.out, name)
    known = records.get(name, {})
    expected = entry["sha256"] or (known.get("sha256") if known.get("origin") == url else "")
    if expected and os.path.isfile(dest) and sources.sha256_file(dest) == expected:
        report.add("unchanged")
        if (known.get("origin"), known.get("sha256"), known.get("credit")) != (url, expected, entry["credit"]):
            try:
                records[name] = _url_record(name, entry, expected, sources.describe_image(dest, name))
            except ValueError as e:
                report.problems.append(f"warning: {name}: matches its checksum but {e}")
        return
    try:
        got = downloads.download(url, dest + ".part", entry["sha256"], config.retries, config.timeout,
                               config.backoff, name=name, **({"sleep": sleep} if sleep else {}))
    except sources.FetchError as e:
        report.add("failed", url, str(e))
        return
    info = got["info"]
    if not is_image_file(name):  # e.g. .../image?id=3: name it by what arrived
        name += sources.extension_for(info["format"])
        os.replace(dest + ".part", os.path.join(config.out, name + ".part"))
        dest = os.path.join(config.out, name)
    if _filtered(info, config):
        os.unlink(dest + ".part")
        report.add("skipped")
        return
    status, message = _place(dest + ".part", dest, got["sha256"], config, move=True)
    report.add(status, url, message)
    if status != "conflict":
        records[name] = _url_record(name, entry, got["sha256"], info)


def _url_record(name: str, entry: dict, digest: str, info: dict) -> dict:
    return {"file": name, "source": "url-list", "origin": entry["url"], "credit": entry["credit"],
            "info_url": "", "sha256": digest, **info}


def fetch(config: FetchConfig, progress: bool = False) -> FetchReport:
    """Runs the source named by `config.source`."""
    if config.source == "stellarium":
        return fetch_stellarium(config, progress)
    if config.source == "url-list":
        return fetch_url_list(config, progress)
    raise ValueError(f"unknown source {config.source!r} (stellarium or url-list)")
