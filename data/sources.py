"""Library part of `python -m data.fetch`: where training images come from.

Three jobs, none of which reads flags:
- Stellarium: find the `nebulae/default` folder of Debian's `stellarium-data`
  (a folder, an installed package, or a `.deb` unpacked with `dpkg-deb -x`) and
  read the per-image credits from its `textures.json`, which is not strict JSON.
- Downloads: one URL to one file, through a `.part` file resumed with HTTP
  Range, retried with exponential backoff, checked by magic bytes, decodability
  and (when given) sha256, then renamed into place.
- The manifest `sources.json`: one record per image file in the output folder,
  saying where it came from, its credit, sha256, size and whether it is true
  colour (palette and greyscale images make poor colour targets).
"""
from __future__ import annotations

import glob
import hashlib
import http.client
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from typing import Callable, Optional

import numpy as np

from common.files import atomic_write_bytes
from data.formats import split_extension

MANIFEST = "sources.json"
STELLARIUM_SUBDIR = os.path.join("usr", "share", "stellarium", "nebulae", "default")
ALLOWED_SCHEMES = ("http", "https", "file")
_CHUNK = 1 << 16
# Above this many pixels the grey/colour content check is skipped (a full decode
# of the largest Hubble mosaics needs gigabytes); the mode-based flags remain.
MAX_CHECK_PIXELS = 120_000_000


_NUMBER = re.compile(r"[-+]?(\d*)(\.?)(\d*)([eE][-+]?\d+)?")


class FetchError(RuntimeError):
    """A source that cannot be fetched; the message says what to do about it."""


# --------------------------------------------------------------------------- textures.json


def _relax_json(text: str) -> str:
    """Makes Stellarium's almost-JSON strict, changing nothing inside strings.

    Handles what `textures.json` files contain: trailing commas before `}`/`]`,
    numbers without a leading digit (`-.9794`, `.5`) or trailing digits (`5.`),
    and `//` or `/* */` comments.
    """
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif c == ",":
            j = i + 1
            while j < n and text[j] in " \t\r\n":
                j += 1
            if j < n and text[j] in "}]":
                i += 1  # trailing comma: drop it
            else:
                out.append(c)
                i += 1
        elif c in "-+.0123456789":
            m = _NUMBER.match(text, i)
            sign = "-" if text[i] == "-" else ""
            whole, dot, frac, exp = m.group(1), m.group(2), m.group(3), m.group(4) or ""
            if not (whole or frac):
                out.append(c)  # not a number; let json.loads report it
                i += 1
                continue
            out.append(f"{sign}{whole or '0'}{'.' + (frac or '0') if dot else ''}{exp}")
            i = m.end()
        else:
            out.append(c)
            i += 1
    return "".join(out)


def parse_textures_json(text: str, name: str = "textures.json") -> dict[str, dict]:
    """Credits per image file from a Stellarium `textures.json`.

    Args:
        text: the file's content (Stellarium's relaxed JSON).
        name: used in error messages.

    Returns:
        `{image file name: {"credit": str, "info_url": str}}` for every
        `subTiles` entry (searched recursively) with an `imageUrl`. Credit keys
        are matched case-insensitively (`short` and `Short` both occur).

    Raises:
        ValueError: the text cannot be parsed even after relaxing it.
    """
    try:
        data = json.loads(_relax_json(text))
    except json.JSONDecodeError as e:
        raise ValueError(f"{name}: not parseable even as relaxed JSON: {e.msg} at line {e.lineno} col {e.colno}") from e
    credits: dict[str, dict] = {}

    def walk(node) -> None:
        if isinstance(node, dict):
            url = node.get("imageUrl")
            if isinstance(url, str) and url:
                raw = node.get("imageCredits") or {}
                keys = {str(k).lower(): v for k, v in raw.items()} if isinstance(raw, dict) else {}
                credit = keys.get("short") or keys.get("full") or ""
                credits[url] = {"credit": str(credit).strip(), "info_url": str(keys.get("infourl") or "").strip()}
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(data)
    return credits


# --------------------------------------------------------------------------- finding Stellarium


def _nebulae_dir(root: str) -> Optional[str]:
    """The folder holding textures.json under `root` (itself, an unpacked .deb, or a Stellarium share dir)."""
    for sub in ("", STELLARIUM_SUBDIR, os.path.join("nebulae", "default")):
        candidate = os.path.join(root, sub) if sub else root
        if os.path.isfile(os.path.join(candidate, "textures.json")):
            return candidate
    return None


def _run(cmd: list[str], cwd: str, what: str) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=3600)
    except FileNotFoundError as e:
        raise FetchError(
            f"{cmd[0]} not found: {what} needs a Debian/Ubuntu system; elsewhere download the "
            f"stellarium-data .deb (or install Stellarium) and pass --stellarium_dir"
        ) from e
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        hint = " (try `sudo apt-get update` first)" if cmd[0] == "apt-get" else ""
        raise FetchError(f"{' '.join(cmd)} failed with exit code {proc.returncode}{hint}: " + " | ".join(tail))


def extract_deb(deb: str, cache_dir: str) -> str:
    """Unpacks a stellarium-data .deb with `dpkg-deb -x` (once) and returns its nebulae folder.

    Raises:
        FetchError: dpkg-deb is missing or fails, or the package has no nebulae/default/textures.json.
    """
    target = os.path.join(cache_dir, os.path.basename(deb)[: -len(".deb")])
    found = _nebulae_dir(target)
    if found:
        return found
    tmp = target + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        _run(["dpkg-deb", "-x", os.path.abspath(deb), tmp], cwd=cache_dir, what="unpacking the .deb")
    except FetchError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not _nebulae_dir(tmp):
        shutil.rmtree(tmp, ignore_errors=True)
        raise FetchError(f"{deb}: has no {STELLARIUM_SUBDIR}/textures.json; is it stellarium-data?")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)  # only a complete extraction is ever found by the check above
    return _nebulae_dir(target)


def locate_stellarium(stellarium_dir: str = "", cache_dir: str = "",
                      installed: str = "/usr/share/stellarium/nebulae/default") -> str:
    """The Stellarium nebula-image folder to read from.

    Order: `stellarium_dir` (a folder or a `.deb`) when given; the installed
    package; a stellarium-data .deb already unpacked in, or downloaded to,
    `cache_dir`; else
    `apt-get download stellarium-data` into `cache_dir`, unpacked there.

    Raises:
        FetchError: with a message saying what failed and what to do.
    """
    if stellarium_dir:
        if stellarium_dir.endswith(".deb") and os.path.isfile(stellarium_dir):
            return extract_deb(stellarium_dir, cache_dir or os.path.dirname(os.path.abspath(stellarium_dir)))
        found = _nebulae_dir(stellarium_dir)
        if not found:
            raise FetchError(f"--stellarium_dir {stellarium_dir}: no textures.json there, nor under "
                             f"{STELLARIUM_SUBDIR} or nebulae/default")
        return found
    if installed and _nebulae_dir(installed):
        return installed
    if not cache_dir:
        raise FetchError("Stellarium is not installed and no cache folder was given to download it into")
    os.makedirs(cache_dir, exist_ok=True)
    unpacked = [d for d in sorted(glob.glob(os.path.join(cache_dir, "stellarium-data_*")))
                if not d.endswith((".deb", ".tmp")) and _nebulae_dir(d)]
    if unpacked:
        return _nebulae_dir(unpacked[-1])
    debs = sorted(glob.glob(os.path.join(cache_dir, "stellarium-data_*.deb")), key=os.path.getmtime)
    if not debs:
        _run(["apt-get", "download", "stellarium-data"], cwd=cache_dir, what="downloading stellarium-data")
        debs = sorted(glob.glob(os.path.join(cache_dir, "stellarium-data_*.deb")), key=os.path.getmtime)
        if not debs:
            raise FetchError(f"apt-get download stellarium-data left no stellarium-data_*.deb in {cache_dir}")
    return extract_deb(debs[-1], cache_dir)


# --------------------------------------------------------------------------- image inspection


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sniff_format(head: bytes, name: str = "") -> Optional[str]:
    """The format ("png", "jpeg", "tiff" or "fits") named by a file's first bytes (64 KiB is plenty), or None.

    Gzip counts as FITS only when the name ends in `.gz` and the start of the
    decompressed stream is a FITS header.
    """
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head.startswith(b"SIMPLE  ="):
        return "fits"
    if head.startswith(b"\x1f\x8b") and name.lower().endswith(".gz"):
        try:
            if zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 16).startswith(b"SIMPLE  ="):
                return "fits"
        except zlib.error:
            return None
    return None


def _grey_and_chroma(rgb: np.ndarray) -> tuple[bool, float]:
    """`rgb [H, W, 3]` uint8 -> (all channels equal, mean of max-min over channels in 8-bit levels)."""
    spread = rgb.max(axis=-1).astype(np.int16) - rgb.min(axis=-1)
    return bool(not spread.any()), round(float(spread.mean()), 3)


def _describe_fits(path: str) -> dict:
    from astropy.io import fits

    with fits.open(path, memmap=True) as hdul:
        for hdu in hdul:  # the header alone gives the shape; no pixel is read
            naxis = int(hdu.header.get("NAXIS", 0)) if hdu.is_image else 0
            shape = tuple(int(hdu.header.get(f"NAXIS{k}", 0)) for k in range(naxis, 0, -1))
            if naxis >= 2 and all(shape):
                break
        else:
            raise ValueError("no image data in any HDU")
    rgb = len(shape) == 3 and shape[0] == 3
    # FITS planes are filter bands mapped to colours by choice, never a photograph's colour.
    return {"width": int(shape[-1]), "height": int(shape[-2]), "mode": "rgb" if rgb else "grey",
            "grey": not rgb, "chroma": None if rgb else 0.0, "true_colour": False}


def describe_image(path: str, name: str = "") -> dict:
    """What a file holds, without changing it (`name`, default the path, tells gzipped FITS apart).

    Returns:
        `{"format": "png"|"jpeg"|"tiff"|"fits", "width", "height",
        "mode": "rgb"|"rgba"|"palette"|"grey", "grey": bool (content has no
        colour: single channel, or all colour channels equal everywhere, or a
        palette of greys), "chroma": mean max-min channel spread in 8-bit levels
        (0 for grey; None when not computed), "true_colour": bool (RGB/RGBA
        storage with colour content)}`.

    Raises:
        ValueError: not an image this project reads, or corrupt/truncated.
    """
    with open(path, "rb") as f:
        fmt = sniff_format(f.read(_CHUNK), name or path)
    if fmt is None:
        raise ValueError("content is not PNG, JPEG, TIFF or FITS")
    if fmt == "fits":
        try:
            return {"format": fmt, **_describe_fits(path)}
        except Exception as e:  # astropy raises many types for broken files
            raise ValueError(f"unreadable FITS ({type(e).__name__}: {e})") from e
    from PIL import Image

    saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # sizes are checked below instead
    try:
        with Image.open(path) as im:
            im.verify()  # walks the whole stream: catches truncation and bad CRCs
        with Image.open(path) as im:
            width, height, pil_mode = im.width, im.height, im.mode
            mode = {"P": "palette", "PA": "palette", "RGB": "rgb", "RGBA": "rgba", "RGBX": "rgb",
                    "CMYK": "rgb", "YCbCr": "rgb", "LAB": "rgb", "HSV": "rgb"}.get(pil_mode, "grey")
            grey, chroma = (True, 0.0) if mode == "grey" else (None, None)
            if mode != "grey" and width * height <= MAX_CHECK_PIXELS:
                if mode == "palette":
                    im = im.convert("RGBA" if "transparency" in im.info or pil_mode == "PA" else "RGB")
                grey, chroma = _grey_and_chroma(np.asarray(im.convert("RGB")))
    except Exception as e:  # decoders raise many types (OSError, SyntaxError, struct.error ...)
        raise ValueError(f"cannot decode, corrupt or truncated ({type(e).__name__}: {e})") from e
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    return {"format": fmt, "width": width, "height": height, "mode": mode, "grey": grey, "chroma": chroma,
            "true_colour": mode in ("rgb", "rgba") and grey is not True}


# --------------------------------------------------------------------------- manifest


def load_manifest(out: str) -> list[dict]:
    """Records of `out/sources.json` (empty when there is none).

    Raises:
        FetchError: the manifest exists but is not a JSON list (it is never silently replaced).
    """
    path = os.path.join(out, MANIFEST)
    if not os.path.isfile(path):
        return []
    try:
        with open(path, encoding="utf-8") as f:
            records = json.load(f)
    except (OSError, ValueError) as e:
        raise FetchError(f"{path}: unreadable manifest ({e}); move it away to start a new one") from e
    if not isinstance(records, list) or not all(isinstance(r, dict) and "file" in r for r in records):
        raise FetchError(f"{path}: not a list of records with a 'file' field; move it away to start a new one")
    return records


def save_manifest(out: str, records: list[dict]) -> str:
    """Writes the records of files that exist in `out` (and of held-out ones, never copied), by file name, atomically."""
    keep = sorted((r for r in records if r.get("held_out") or os.path.isfile(os.path.join(out, r["file"]))),
                  key=lambda r: r["file"])
    path = os.path.join(out, MANIFEST)
    atomic_write_bytes(path, (json.dumps(keep, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))
    return path


# --------------------------------------------------------------------------- URL lists


def parse_url_list(text: str) -> list[dict]:
    """Lines `URL [SHA256] [credit ...]`; blank lines and `#` comments ignored.

    Returns:
        `[{"url", "sha256" (lower-case hex or ""), "credit", "line"}]` in file order.

    Raises:
        ValueError: a line whose second field looks like a checksum but is not 64 hex digits.
    """
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 2)
        url, sha, credit = parts[0], "", ""
        rest = parts[1:]
        if rest and re.fullmatch(r"[0-9a-fA-F]{64}", rest[0]):
            sha, rest = rest[0].lower(), rest[1:]
        elif rest and re.fullmatch(r"[0-9a-fA-F]{32,}", rest[0]):
            raise ValueError(f"line {number}: {rest[0]!r} is not a sha256 (64 hex digits)")
        if rest:
            credit = " ".join(rest)
        entries.append({"url": url, "sha256": sha, "credit": credit, "line": number})
    return entries


def name_from_url(url: str) -> str:
    """A safe local file name from the last segment of a URL's path.

    Directories (`/` and `\\`, also percent-encoded) are stripped, characters
    outside `[A-Za-z0-9._-]` become `_`, leading dots are removed (no hidden
    files, no `..`), and the result is at most 150 characters.

    Raises:
        ValueError: the scheme is not http/https/file, or no usable name is left.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise ValueError(f"{url}: scheme {parts.scheme or '(none)'!r} not allowed (only http, https, file)")
    segment = re.split(r"[/\\]", urllib.parse.unquote(parts.path))[-1]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", segment).lstrip(".")
    stem, ext = split_extension(name)
    name = stem[: 150 - len(ext)] + ext
    if not stem.strip("_-."):
        raise ValueError(f"{url}: no file name in the URL path")
    return name


def with_suffix_hash(name: str, key: str) -> str:
    """`name` with 8 hex digits of sha1(key) before its extension (stable de-duplication)."""
    stem, ext = split_extension(name)
    return f"{stem}-{hashlib.sha1(key.encode('utf-8')).hexdigest()[:8]}{ext}"


class _Retryable(Exception):
    """A failure worth another attempt (network error, 5xx/408/429, truncated body)."""


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects to http(s) only: urllib alone would also follow one to ftp:."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlsplit(newurl).scheme.lower() not in ("http", "https"):
            raise urllib.error.HTTPError(newurl, code, f"redirect to {newurl} refused (only http/https)", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _open(url: str, offset: int, timeout: float):
    request = urllib.request.Request(url, headers={"User-Agent": "astro-colorize-sr-fetch/1.0"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        return urllib.request.build_opener(_HttpOnlyRedirects).open(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and offset:
            return None  # our .part is at or past the end; start again
        if e.code >= 500 or e.code in (408, 429):
            raise _Retryable(f"HTTP {e.code} {e.reason}") from e
        raise FetchError(f"HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        if isinstance(e, urllib.error.URLError) and url.lower().startswith("file:"):
            raise FetchError(f"cannot open: {reason}") from e
        raise _Retryable(f"{type(reason).__name__}: {reason}") from e


def _content_start(response, offset: int) -> Optional[int]:
    """Where the body starts in the file: `offset` for a matching 206, 0 for 200, None if unusable."""
    status = getattr(response, "status", None) or 200
    if status == 206:
        m = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
        return int(m.group(1)) if m and int(m.group(1)) == offset else None
    return 0


def _attempt(url: str, part: str, timeout: float, name: str) -> None:
    """One request: continues `part` from its size, or restarts it when the server sends it whole."""
    offset = os.path.getsize(part) if os.path.isfile(part) else 0
    response = _open(url, offset, timeout)
    if response is None:
        os.unlink(part)
        raise _Retryable("server refused the resume range (416); restarting")
    with response:
        start = _content_start(response, offset)
        if start is None:
            os.unlink(part)
            raise _Retryable("server answered the Range request with a different range; restarting")
        length = response.headers.get("Content-Length")
        expected = start + int(length) if length and length.isdigit() else None
        content_type = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        with open(part, "r+b" if start else "wb") as f:
            f.seek(start)
            f.truncate()
            first = True
            try:
                for block in iter(lambda: response.read(_CHUNK), b""):
                    if first and start == 0 and sniff_format(block, name) is None and (
                            len(block) >= 16 or content_type.startswith(("text/", "application/json"))):
                        raise FetchError(f"not an image (Content-Type {content_type or 'none'}, "
                                         f"starts with {block[:16]!r})")
                    first = False
                    f.write(block)
            except (OSError, http.client.HTTPException) as e:
                raise _Retryable(f"connection lost after {f.tell()} bytes ({type(e).__name__})") from e
            size = f.tell()
    if expected is not None and size < expected:
        raise _Retryable(f"connection closed after {size} of {expected} bytes")


def download(url: str, part: str, sha256: str = "", retries: int = 3, timeout: float = 60.0,
             backoff: float = 1.0, name: str = "", sleep: Callable[[float], None] = time.sleep) -> dict:
    """Downloads `url` into the file `part`, continuing it if an earlier try left it there.

    The caller renames the verified `part` into place (so the final name can
    depend on what arrived, and an existing file is never touched here).

    Args:
        url: http, https or file URL.
        part: the temporary file, by convention `<final name>.part`.
        sha256: expected hex digest, or "" for none.
        retries: extra attempts after network errors, 5xx/408/429 and truncated bodies.
        timeout: seconds per network operation.
        backoff: the k-th retry waits `backoff * 2**(k-1)` seconds.
        name: the final file name (its extension tells gzipped FITS apart).
        sleep: injected for tests.

    Returns:
        `{"sha256": hex digest, "attempts": int, "resumed": bool, "info": describe_image(part)}`.

    Raises:
        FetchError: 4xx, not an image, checksum mismatch, or retries used up.
            After anything but used-up retries no `.part` is left behind; after
            those it is kept so the next run resumes it.
    """
    resumed = False
    restarted_after_mismatch = False
    attempt = 0
    while True:
        attempt += 1
        try:
            resumed |= os.path.isfile(part) and os.path.getsize(part) > 0
            _attempt(url, part, timeout, name or url.split("?")[0])
        except _Retryable as e:
            if attempt > retries:
                raise FetchError(f"gave up after {attempt} attempts: {e}") from e
            sleep(backoff * 2 ** (attempt - 1))
            continue
        except FetchError:
            # 4xx or not an image: what was received is of no use to a later resume.
            # (An interrupt, by contrast, leaves the .part for the next run.)
            if os.path.isfile(part):
                os.unlink(part)
            raise
        digest = sha256_file(part)
        problem, info = "", None
        if sha256 and digest != sha256:
            problem = f"sha256 mismatch: expected {sha256}, got {digest}"
        else:
            try:
                info = describe_image(part, name)
            except ValueError as e:
                problem = f"not a usable image: {e}"
        if problem:
            os.unlink(part)
            # A resumed .part may have been spliced onto a changed file: one fresh try settles it.
            if resumed and not restarted_after_mismatch:
                restarted_after_mismatch, resumed = True, False
                continue
            raise FetchError(problem)
        return {"sha256": digest, "attempts": attempt, "resumed": resumed, "info": info}


def extension_for(fmt: str) -> str:
    return {"png": ".png", "jpeg": ".jpg", "tiff": ".tif", "fits": ".fits"}[fmt]

