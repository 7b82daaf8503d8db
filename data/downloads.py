"""One URL to one file: through a `.part` file resumed with HTTP Range, retried with
exponential backoff, checked by magic bytes, decodability and (when given) sha256,
then renamed into place; and the URL lists (`URL [SHA256] [credit ...]`) that name them.

Used by `data.fetching`; nothing here reads flags.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Callable, Optional

from data.formats import split_extension
from data.sources import FetchError, describe_image, sha256_file, sniff_format

ALLOWED_SCHEMES = ("http", "https", "file")
_CHUNK = 1 << 16


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
