"""`data.fetch`: Stellarium extraction and URL-list downloads, offline.

Downloads go to a real `ThreadingHTTPServer` bound to 127.0.0.1 (port 0),
serving real fixture images, with Range support and switchable faults (503s,
a connection dropped mid-body, ignoring Range). Nothing leaves the machine.
"""
import dataclasses
import hashlib
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading

import pytest
from PIL import Image

from data import downloads, sources, stellarium
from data.fetching import FetchConfig, fetch_stellarium, fetch_url_list

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


# --------------------------------------------------------------------------- loopback server


class _Site:
    """What the test server serves and how it misbehaves; every request is logged."""

    def __init__(self):
        self.files = {}  # path -> (bytes, content type)
        self.fail = {}  # path -> number of 503s still to send
        self.drop_once = set()  # paths whose next body is cut in half
        self.honour_range = True
        self.redirects = {}  # path -> Location
        self.log = []  # (path, Range header or None)
        self.lock = threading.Lock()


def _handler(site: _Site):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

        def do_GET(self):
            path = self.path.split("?")[0]
            rng = self.headers.get("Range")
            with site.lock:
                site.log.append((path, rng))
                failing = site.fail.get(path, 0)
                if failing:
                    site.fail[path] = failing - 1
                drop = path in site.drop_once
                site.drop_once.discard(path)
            if failing:
                self.send_error(503, "try later")
                return
            if path in site.redirects:
                self.send_response(302)
                self.send_header("Location", site.redirects[path])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if path not in site.files:
                self.send_error(404, "no such file")
                return
            body, ctype = site.files[path]
            start = 0
            m = re.fullmatch(r"bytes=(\d+)-", rng or "")
            if m and site.honour_range:
                start = int(m.group(1))
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            payload = body[start:]
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if drop:
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(payload)

    return Handler


@pytest.fixture(autouse=True)
def _no_proxy_for_loopback(monkeypatch):
    # urllib honours http_proxy; a proxy configured on the test machine must not see loopback requests.
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")


@pytest.fixture
def server():
    site = _Site()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(site))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    site.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield site
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _serve(site, real_images, n=3):
    """Serves n fixture PNGs at /img/<name>; returns [(url, bytes)]."""
    out = []
    for path in real_images[:n]:
        data = _read(path)
        site.files["/img/" + os.path.basename(path)] = (data, "image/png")
        out.append((site.base + "/img/" + os.path.basename(path), data))
    return out


def _config(tmp_path, lines, **kw):
    os.makedirs(tmp_path, exist_ok=True)
    url_list = tmp_path / "urls.txt"
    url_list.write_text("\n".join(lines) + "\n")
    kw.setdefault("backoff", 0.0)
    kw.setdefault("timeout", 10.0)
    return FetchConfig(source="url-list", out=str(tmp_path / "out"), url_list=str(url_list), **kw)


def _manifest(out) -> dict:
    return {r["file"]: r for r in json.loads(_read(os.path.join(out, "sources.json")))}


def _leftovers(out):
    return [n for n in os.listdir(out) if n.endswith(".part")]


# --------------------------------------------------------------------------- URL lists


def test_parse_url_list_checksums_comments_credits():
    sha = "ab" * 32
    text = f"# a comment\n\nhttp://h/a.png\n  http://h/b.png {sha.upper()} NASA, ESA and STScI \n# x\nfile:///x.jpg\n"
    entries = downloads.parse_url_list(text)
    assert [e["url"] for e in entries] == ["http://h/a.png", "http://h/b.png", "file:///x.jpg"]
    assert [e["sha256"] for e in entries] == ["", sha, ""]
    assert entries[1]["credit"] == "NASA, ESA and STScI"
    with pytest.raises(ValueError, match="line 1"):
        downloads.parse_url_list("http://h/a.png " + "f" * 40)  # a sha1, not a sha256


def test_names_from_urls_are_safe():
    assert downloads.name_from_url("https://esahubble.org/media/archives/images/large/heic0506a.jpg?x=1") == "heic0506a.jpg"
    assert downloads.name_from_url("http://h/a/..%2F..%2Fetc%2Fpasswd") == "passwd"
    assert downloads.name_from_url("http://h/x/..%5C..%5Cevil.png") == "evil.png"
    assert downloads.name_from_url("http://h/.hidden.png") == "hidden.png"
    assert downloads.name_from_url("http://h/a%20b%3Bc.png") == "a_b_c.png"
    for bad in ("http://h/", "http://h/%2e%2e", "http://h/dir/.", "ftp://h/a.png", "javascript:alert(1)", "a.png"):
        with pytest.raises(ValueError):
            downloads.name_from_url(bad)


def test_downloads_match_source_bytes_and_sha(server, real_images, m51_fits, tmp_path):
    served = _serve(server, real_images, 3)
    server.files["/raw/m51.fits.gz"] = (_read(m51_fits), "application/octet-stream")
    lines = [f"{served[0][0]} {_sha(served[0][1])} NASA/ESA Hubble", served[1][0], f"  {served[2][0]}  ",
             server.base + "/raw/m51.fits.gz"]
    report = fetch_url_list(_config(tmp_path, lines))
    out = tmp_path / "out"
    assert report.ok and report.counts == {"downloaded": 4}, report.problems
    manifest = _manifest(out)
    for url, data in served:
        name = url.rsplit("/", 1)[1]
        assert _read(out / name) == data
        rec = manifest[name]
        assert rec["sha256"] == _sha(data) and rec["origin"] == url and rec["source"] == "url-list"
        assert (rec["mode"], rec["true_colour"], rec["width"], rec["height"]) == ("rgb", True, 256, 256)
    assert manifest[served[0][0].rsplit("/", 1)[1]]["credit"] == "NASA/ESA Hubble"
    fits_rec = manifest["m51.fits.gz"]
    assert (fits_rec["format"], fits_rec["mode"], fits_rec["true_colour"]) == ("fits", "grey", False)
    assert (fits_rec["width"], fits_rec["height"]) == (384, 384)
    assert _leftovers(out) == []


def test_file_urls_work_and_other_schemes_are_refused(real_images, tmp_path):
    report = fetch_url_list(_config(tmp_path, ["file://" + real_images[0], "ftp://example.invalid/x.png"]))
    assert report.counts == {"downloaded": 1, "failed": 1}
    assert any("scheme 'ftp' not allowed" in p for p in report.problems)
    assert _read(tmp_path / "out" / os.path.basename(real_images[0])) == _read(real_images[0])


def test_redirects_and_names_without_extension(server, real_images, tmp_path):
    (url, data), = _serve(server, real_images, 1)
    server.files["/get"] = (data, "application/octet-stream")
    server.redirects["/latest.png"] = url
    server.redirects["/sneaky.png"] = "ftp://127.0.0.1/x.png"
    lines = [server.base + "/get?id=7", server.base + "/latest.png", server.base + "/sneaky.png"]
    report = fetch_url_list(_config(tmp_path, lines))
    assert report.counts == {"downloaded": 2, "failed": 1}
    assert "refused" in report.problems[0] and "sneaky.png" in report.problems[0]
    out = tmp_path / "out"
    assert _read(out / "get.png") == data and _read(out / "latest.png") == data  # named by what arrived
    assert sorted(os.listdir(out)) == ["get.png", "latest.png", "sources.json"]
    again = fetch_url_list(_config(tmp_path, lines))
    assert again.counts == {"unchanged": 2, "failed": 1}


def test_retries_503_with_exponential_backoff(server, real_images, tmp_path):
    (url, data), = _serve(server, real_images, 1)
    path = "/img/" + os.path.basename(real_images[0])
    server.fail[path] = 2
    waits = []
    report = fetch_url_list(_config(tmp_path, [url], retries=3, backoff=0.5), sleep=waits.append)
    assert report.counts == {"downloaded": 1}
    assert waits == [0.5, 1.0]
    assert [p for p, _ in server.log].count(path) == 3
    assert _read(tmp_path / "out" / os.path.basename(path)) == data

    server.fail[path] = 5  # more failures than retries: reported, nothing written
    report = fetch_url_list(_config(tmp_path / "b", [url], retries=1), sleep=waits.append)
    assert report.counts == {"failed": 1} and not report.ok
    assert "gave up after 2 attempts" in report.problems[0] and "503" in report.problems[0]
    assert not os.path.exists(tmp_path / "b" / "out" / os.path.basename(path))


def test_wrong_checksum_is_reported_and_leaves_no_file(server, real_images, tmp_path):
    (url, data), = _serve(server, real_images, 1)
    report = fetch_url_list(_config(tmp_path, [f"{url} {_sha(data + b'x')}"]))
    out = tmp_path / "out"
    assert report.counts == {"failed": 1}
    assert "sha256 mismatch" in report.problems[0] and _sha(data) in report.problems[0]
    assert sorted(os.listdir(out)) == ["sources.json"] and _manifest(out) == {}


def test_resume_after_connection_dropped_mid_body(server, real_images, tmp_path):
    (url, data), = _serve(server, real_images, 1)
    path = "/img/" + os.path.basename(real_images[0])
    server.drop_once.add(path)
    report = fetch_url_list(_config(tmp_path, [f"{url} {_sha(data)}"]))
    assert report.counts == {"downloaded": 1}, report.problems
    assert server.log == [(path, None), (path, f"bytes={len(data) // 2}-")]
    assert _read(tmp_path / "out" / os.path.basename(path)) == data


@pytest.mark.parametrize("honour_range", [True, False])
def test_resume_from_existing_part_file(server, real_images, tmp_path, honour_range):
    (url, data), = _serve(server, real_images, 1)
    server.honour_range = honour_range
    name = os.path.basename(real_images[0])
    out = tmp_path / "out"
    out.mkdir()
    (out / (name + ".part")).write_bytes(data[:1000])  # left by an interrupted run
    report = fetch_url_list(_config(tmp_path, [url]))
    assert report.counts == {"downloaded": 1}, report.problems
    assert server.log == [("/img/" + name, "bytes=1000-")]
    assert _read(out / name) == data and _leftovers(out) == []


def test_stale_part_of_other_content_is_redone(server, real_images, tmp_path):
    (url, data), = _serve(server, real_images, 1)
    name = os.path.basename(real_images[0])
    out = tmp_path / "out"
    out.mkdir()
    (out / (name + ".part")).write_bytes(_read(real_images[1])[:1000])  # an older, different file
    report = fetch_url_list(_config(tmp_path, [url]))
    assert report.counts == {"downloaded": 1}, report.problems
    assert [r for _, r in server.log] == ["bytes=1000-", None]  # spliced file failed its CRC check
    assert _read(out / name) == data


def test_404_is_reported_while_the_rest_download(server, real_images, tmp_path):
    served = _serve(server, real_images, 2)
    lines = [served[0][0], server.base + "/img/missing.png", served[1][0]]
    config = _config(tmp_path, lines)
    report = fetch_url_list(config)
    assert report.counts == {"downloaded": 2, "failed": 1}
    assert "missing.png" in report.problems[0] and "HTTP 404" in report.problems[0]
    assert len(_manifest(config.out)) == 2
    # The command line says so too, with a non-zero exit status.
    proc = subprocess.run(
        [sys.executable, "-m", "data.fetch", "--source", "url-list", config.url_list, "--out", str(tmp_path / "cli"),
         "--backoff", "0", "--retries", "0"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert "HTTP 404" in proc.stderr and "2 image(s) in place" in proc.stdout


def test_non_image_response_is_rejected(server, real_images, tmp_path):
    server.files["/img/page.png"] = (b"<!doctype html><html><body>Not found, really</body></html>", "text/html")
    server.files["/img/odd.png"] = (b"GIF89a" + bytes(200), "image/gif")
    report = fetch_url_list(_config(tmp_path, [server.base + "/img/page.png", server.base + "/img/odd.png"]))
    assert report.counts == {"failed": 2}
    assert all("not an image" in p for p in report.problems)
    assert sorted(os.listdir(tmp_path / "out")) == ["sources.json"]


def test_rerun_is_idempotent_and_name_collisions_are_separated(server, real_images, tmp_path):
    served = _serve(server, real_images, 2)
    other = _read(real_images[2])
    server.files["/mirror/" + os.path.basename(real_images[0])] = (other, "image/png")  # same name, other image
    lines = [served[0][0], served[1][0] + " " + _sha(served[1][1]), server.base + "/mirror/" + os.path.basename(real_images[0])]
    config = _config(tmp_path, lines)
    first = fetch_url_list(config)
    assert first.counts == {"downloaded": 3}, first.problems
    files = sorted(n for n in os.listdir(config.out) if n != "sources.json")
    assert len(files) == 3 and os.path.basename(real_images[0]) in files
    collided = [n for n in files if re.fullmatch(re.escape(os.path.splitext(os.path.basename(real_images[0]))[0])
                                                 + r"-[0-9a-f]{8}\.png", n)]
    assert len(collided) == 1 and _read(os.path.join(config.out, collided[0])) == other
    before = {n: os.stat(os.path.join(config.out, n)).st_mtime_ns for n in files}
    manifest = _read(os.path.join(config.out, "sources.json"))
    requests = len(server.log)

    second = fetch_url_list(config)
    assert second.counts == {"unchanged": 3} and second.ok
    assert len(server.log) == requests  # nothing requested again
    assert {n: os.stat(os.path.join(config.out, n)).st_mtime_ns for n in files} == before
    assert _read(os.path.join(config.out, "sources.json")) == manifest


def test_existing_different_file_is_kept_unless_overwrite(server, real_images, tmp_path):
    (url, data), = _serve(server, real_images, 1)
    name = os.path.basename(real_images[0])
    out = tmp_path / "out"
    out.mkdir()
    mine = _read(real_images[5])
    (out / name).write_bytes(mine)  # the user's own file under that name
    config = _config(tmp_path, [url])
    report = fetch_url_list(config)
    assert report.counts == {"conflict": 1} and not report.ok
    assert "kept it" in report.problems[0]
    assert _read(out / name) == mine and _leftovers(out) == []
    report = fetch_url_list(dataclasses.replace(config, overwrite=True))
    assert report.counts == {"replaced": 1}
    assert _read(out / name) == data and _manifest(out)[name]["sha256"] == _sha(data)


# --------------------------------------------------------------------------- Stellarium

TEXTURES_SAMPLE = """{
	"shortName": "Nebulae",
	"minResolution" : 0.05,
	"subTiles" : [
	{
		"imageCredits": {"short" : "Stephane Dumont"},
		"imageUrl" : "colour_a.png",
		"worldCoords" : [[[323.4989,-.9794], [323.22,-.9794], [323.2201,-.6994], [323.499,-.6994]]],
		"textureCoords" : [[[0,0], [1,0], [1,1], [0,1]]],
		"minResolution" : .1347774682,
		"birthJD": 2106215.
	},
	{
		"imageCredits" : {"Short": "ESO/R. Gendler, with a comma, and }brace] in \\"quotes\\"", "infoUrl": "https://www.eso.org/public/images/eso1205a/",},
		"imageUrl" : "colour_b.png",
		"worldCoords" : [[[-94.6498, -32.5023], [-95.2120, -32.5211],]],
	},
	{
		"imageCredits" : {"short" : "Plover Hill Observatory", },
		"imageUrl" : "grey_l.png",
	},
	// a comment some hand-edited files carry
	{"imageCredits" : {"short" : "DSS"}, "imageUrl" : "grey_rgb.png"},
	{"imageCredits" : {"short" : "NASA, ESA and the Hubble Heritage Team"}, "imageUrl" : "palette.png",},
	]
}
"""


def test_textures_json_quirks_are_parsed():
    credits = stellarium.parse_textures_json(TEXTURES_SAMPLE)
    assert sorted(credits) == ["colour_a.png", "colour_b.png", "grey_l.png", "grey_rgb.png", "palette.png"]
    assert credits["colour_a.png"] == {"credit": "Stephane Dumont", "info_url": ""}
    assert credits["colour_b.png"] == {"credit": 'ESO/R. Gendler, with a comma, and }brace] in "quotes"',
                                       "info_url": "https://www.eso.org/public/images/eso1205a/"}
    assert credits["palette.png"]["credit"] == "NASA, ESA and the Hubble Heritage Team"
    relaxed = json.loads(stellarium._relax_json(TEXTURES_SAMPLE))
    assert relaxed["subTiles"][0]["worldCoords"][0][0] == [323.4989, -0.9794]
    assert relaxed["subTiles"][0]["minResolution"] == 0.1347774682
    with pytest.raises(ValueError, match="textures.json"):
        stellarium.parse_textures_json('{"subTiles": [ {"imageUrl": "a.png" ')


@pytest.fixture
def fake_stellarium(tmp_path, real_images, data_dir):
    """A tiny nebulae/default folder: 2 colour, an L-mode grey, an RGB grey, a palette PNG, textures.json."""
    folder = tmp_path / "stellarium" / "nebulae" / "default"
    folder.mkdir(parents=True)
    shutil.copyfile(real_images[0], folder / "colour_a.png")
    shutil.copyfile(real_images[1], folder / "colour_b.png")
    grey = Image.open(real_images[2]).convert("L")
    grey.save(folder / "grey_l.png")
    grey.convert("RGB").save(folder / "grey_rgb.png")
    shutil.copyfile(os.path.join(data_dir, "formats", "palette_p33423.png"), folder / "palette.png")
    (folder / "textures.json").write_text(TEXTURES_SAMPLE)
    (folder / "catalog.dat").write_bytes(b"not an image")
    return folder


def _stellarium_config(tmp_path, folder, **kw):
    return FetchConfig(source="stellarium", out=str(tmp_path / "out"), stellarium_dir=str(folder),
                       cache_dir=str(tmp_path / "cache"), **kw)


def test_stellarium_copies_bytes_with_credits_and_flags(tmp_path, fake_stellarium):
    report = fetch_stellarium(_stellarium_config(tmp_path, fake_stellarium, hold_out=False), installed="")
    out = tmp_path / "out"
    assert report.counts == {"copied": 5} and report.ok, report.problems
    manifest = _manifest(out)
    assert sorted(manifest) == ["colour_a.png", "colour_b.png", "grey_l.png", "grey_rgb.png", "palette.png"]
    for name, rec in manifest.items():
        assert _read(out / name) == _read(fake_stellarium / name)  # byte for byte
        assert rec["sha256"] == _sha(_read(out / name)) and rec["source"] == "stellarium"
        assert rec["origin"].endswith("nebulae/default/" + name)
    assert manifest["colour_b.png"]["credit"].startswith("ESO/R. Gendler")
    assert manifest["colour_b.png"]["info_url"] == "https://www.eso.org/public/images/eso1205a/"
    assert manifest["palette.png"]["credit"] == "NASA, ESA and the Hubble Heritage Team"
    flags = {n: (r["mode"], r["grey"], r["true_colour"]) for n, r in manifest.items()}
    assert flags["colour_a.png"] == ("rgb", False, True)
    assert flags["grey_l.png"] == ("grey", True, False)
    assert flags["grey_rgb.png"] == ("rgb", True, False)
    assert flags["palette.png"][0] == "palette" and flags["palette.png"][2] is False
    assert manifest["grey_rgb.png"]["chroma"] == 0.0 and manifest["colour_a.png"]["chroma"] > 1.0
    assert (manifest["palette.png"]["width"], manifest["palette.png"]["height"]) == Image.open(out / "palette.png").size


def test_stellarium_filters_limit_and_rerun(tmp_path, fake_stellarium):
    config = _stellarium_config(tmp_path, fake_stellarium, only_true_colour=True)
    report = fetch_stellarium(config, installed="")
    assert report.counts == {"copied": 2, "skipped": 3}
    assert sorted(_manifest(config.out)) == ["colour_a.png", "colour_b.png"]

    again = fetch_stellarium(config, installed="")
    assert again.counts == {"unchanged": 2, "skipped": 3}

    (tmp_path / "out" / "colour_a.png").write_bytes(_read(fake_stellarium / "grey_rgb.png"))  # edited by hand
    conflict = fetch_stellarium(config, installed="")
    assert conflict.counts == {"conflict": 1, "unchanged": 1, "skipped": 3} and not conflict.ok
    assert _read(tmp_path / "out" / "colour_a.png") == _read(fake_stellarium / "grey_rgb.png")
    replaced = fetch_stellarium(dataclasses.replace(config, overwrite=True), installed="")
    assert replaced.counts["replaced"] == 1
    assert _read(tmp_path / "out" / "colour_a.png") == _read(fake_stellarium / "colour_a.png")

    limited = fetch_stellarium(dataclasses.replace(config, out=str(tmp_path / "lim"), only_true_colour=False,
                                                   limit=2), installed="")
    assert limited.kept == 2 and len(_manifest(tmp_path / "lim")) == 2
    small = fetch_stellarium(dataclasses.replace(config, out=str(tmp_path / "big"), min_size=257), installed="")
    assert small.counts == {"skipped": 5}


def test_stellarium_holds_out_hubble_credited_images(tmp_path, fake_stellarium):
    # palette.png is credited to "NASA, ESA and the Hubble Heritage Team": a held-out domain's picture.
    config = _stellarium_config(tmp_path, fake_stellarium)
    report = fetch_stellarium(config, installed="")
    assert report.counts == {"copied": 4, "held_out": 1}
    assert not (tmp_path / "out" / "palette.png").exists()
    manifest = _manifest(config.out)
    assert manifest["palette.png"]["held_out"] is True
    assert manifest["palette.png"]["credit"] == "NASA, ESA and the Hubble Heritage Team"
    assert not any(r.get("held_out") for n, r in manifest.items() if n != "palette.png")
    assert fetch_stellarium(config, installed="").counts == {"unchanged": 4, "held_out": 1}


def test_stellarium_missing_listed_file_is_reported(tmp_path, fake_stellarium):
    os.unlink(fake_stellarium / "grey_l.png")
    report = fetch_stellarium(_stellarium_config(tmp_path, fake_stellarium, hold_out=False), installed="")
    assert report.counts == {"copied": 4, "failed": 1} and "grey_l.png" in report.problems[0]


def test_locate_stellarium_order(tmp_path, fake_stellarium):
    # An unpacked package root and the nebulae folder itself both work.
    assert stellarium.locate_stellarium(str(fake_stellarium)) == str(fake_stellarium)
    assert stellarium.locate_stellarium(str(tmp_path / "stellarium")) == str(fake_stellarium)
    # Without the flag, an installed copy is used before any download.
    assert stellarium.locate_stellarium("", str(tmp_path / "cache"), installed=str(fake_stellarium)) == str(fake_stellarium)
    with pytest.raises(sources.FetchError, match="no textures.json"):
        stellarium.locate_stellarium(str(tmp_path / "nowhere"))


def test_locate_stellarium_without_apt_get_says_so(tmp_path, monkeypatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(sources.FetchError, match="apt-get not found.*--stellarium_dir"):
        stellarium.locate_stellarium("", str(tmp_path / "cache"), installed=str(tmp_path / "not-installed"))


def test_failing_apt_get_is_reported_with_its_message(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    apt = bin_dir / "apt-get"  # stands in for an apt-get without package lists
    apt.write_text("#!/bin/sh\necho 'E: Unable to locate package stellarium-data' >&2\nexit 100\n")
    apt.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(sources.FetchError, match="exit code 100.*apt-get update.*Unable to locate package"):
        stellarium.locate_stellarium("", str(tmp_path / "cache"), installed="")


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb (Debian/Ubuntu)")
def test_corrupt_deb_is_reported(tmp_path):
    deb = tmp_path / "stellarium-data_9_all.deb"
    deb.write_bytes(b"!<arch>\nnot really a package")
    with pytest.raises(sources.FetchError, match="dpkg-deb -x .* failed"):
        stellarium.locate_stellarium(str(deb), str(tmp_path / "cache"))
    assert os.listdir(tmp_path / "cache") == []  # no half-unpacked folder left to be mistaken for a good one


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb (Debian/Ubuntu)")
def test_stellarium_from_a_deb_in_the_cache(tmp_path, fake_stellarium):
    # Build a real (tiny) stellarium-data .deb and let the cache path unpack it with dpkg-deb -x.
    root = tmp_path / "pkg"
    shutil.copytree(fake_stellarium, root / stellarium.STELLARIUM_SUBDIR)
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN" / "control").write_text(
        "Package: stellarium-data\nVersion: 0.0-test\nArchitecture: all\nMaintainer: t <t@example.invalid>\n"
        "Description: test\n")
    cache = tmp_path / "cache"
    cache.mkdir()
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(root), str(cache / "stellarium-data_0.0-test_all.deb")],
                   check=True, capture_output=True, timeout=60)
    config = FetchConfig(source="stellarium", out=str(tmp_path / "out"), cache_dir=str(cache))
    report = fetch_stellarium(config, installed=str(tmp_path / "not-installed"))
    assert report.counts == {"copied": 4, "held_out": 1}, report.problems
    assert _manifest(config.out)["colour_a.png"]["credit"] == "Stephane Dumont"
    # Unpacked once: a second run finds the extraction and does not need the .deb.
    os.unlink(cache / "stellarium-data_0.0-test_all.deb")
    assert fetch_stellarium(config, installed="").counts == {"unchanged": 4, "held_out": 1}
