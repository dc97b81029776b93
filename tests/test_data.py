"""Tests of minivae.data: real files through the mirror, faults without a network, readers, sprites.

Real-data tests read the shared mirror in place (conftest sets MINIVAE_DATA_MIRROR) and skip
without it. Downloads go to FakeServer, a web server on 127.0.0.1 that each test fills with pages;
download._open_url, the one function that touches the network, refuses every other address, so
nothing here goes online. Downloads land in tmp_path.
"""

import dataclasses
import functools
import gzip
import hashlib
import http.server
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np
import pytest

from minivae import data
from minivae.data import download, paths, registry, sprites
from minivae.data.amat import read_amat
from minivae.data.idx import read_idx_images, read_idx_labels

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Only 127.0.0.1 answers: any other URL fails as if offline."""
    real_open_url = download._open_url

    def loopback_only(url, out):
        if urllib.parse.urlsplit(url).hostname != "127.0.0.1":
            raise OSError("network disabled in tests")
        real_open_url(url, out)
    monkeypatch.setattr(download, "_open_url", loopback_only)


# ---------------------------------------------------------------- real data, through the mirror

def needs_mirror(name):
    """Skip unless MINIVAE_DATA_MIRROR holds every file of dataset `name`."""
    mirror = paths.mirror_dir()
    if mirror is None:
        pytest.skip("real data: set MINIVAE_DATA_MIRROR to a folder laid out like shared/data")
    missing = [f.relpath for f in data.DATASETS[name].files if not (mirror / f.relpath).is_file()]
    if missing:
        pytest.skip(f"real data: mirror {mirror} lacks {', '.join(missing)}")


MNIST_COUNTS = {"train": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
                "test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]}


def check_images(ds, n, name, split):
    assert (ds.name, ds.split, len(ds), ds.image_shape) == (name, split, n, (28, 28))
    assert ds.x.shape == (n, 784) and ds.x.dtype == np.float32 and ds.x.flags.c_contiguous
    assert ds.x.min() == 0.0 and ds.x.max() == 1.0
    assert ds.factors is None and ds.factor_names is None


@pytest.mark.parametrize("split", ["train", "test"])
def test_mnist(split):
    needs_mirror("mnist")
    ds = data.load("mnist", split)
    check_images(ds, sum(MNIST_COUNTS[split]), "mnist", split)
    assert ds.y.dtype == np.int64
    assert np.bincount(ds.y).tolist() == MNIST_COUNTS[split]
    assert np.all(np.isin(ds.x[:100] * 255, np.arange(256)))     # grey levels k / 255


@pytest.mark.parametrize("split,n", [("train", 60000), ("test", 10000)])
def test_fashion_mnist(split, n):
    needs_mirror("fashion-mnist")
    ds = data.load("fashion-mnist", split)
    check_images(ds, n, "fashion-mnist", split)
    assert np.bincount(ds.y).tolist() == [n // 10] * 10


@pytest.mark.parametrize("split,n", [("train", 50000), ("valid", 10000), ("test", 10000)])
def test_binarized_mnist(split, n):
    needs_mirror("binarized-mnist")
    ds = data.load("binarized-mnist", split)
    check_images(ds, n, "binarized-mnist", split)
    assert ds.y is None
    assert set(np.unique(ds.x).tolist()) == {0.0, 1.0}
    assert 0.10 < ds.x.mean() < 0.16                     # MNIST strokes cover ~13% of pixels


def test_mirror_is_read_in_place():
    needs_mirror("mnist")
    before = sorted(p for p in data.data_dir().rglob("*")) if data.data_dir().exists() else []
    found = data.fetch("mnist")
    assert found == [paths.mirror_dir() / f.relpath for f in data.DATASETS["mnist"].files]
    after = sorted(p for p in data.data_dir().rglob("*")) if data.data_dir().exists() else []
    assert after == before                               # nothing copied into the data folder


def test_registry_matches_mirror_checksums():
    mirror = paths.mirror_dir()
    if mirror is None or not (mirror / "SHA256SUMS").is_file():
        pytest.skip("real data: no MINIVAE_DATA_MIRROR with a SHA256SUMS file")
    sums = dict(line.split()[::-1] for line in (mirror / "SHA256SUMS").read_text().splitlines()
                if line.strip())
    files = {f.relpath: f for info in data.list_datasets() for f in info.files}
    assert set(files) == set(sums)
    for relpath, f in files.items():
        assert f.sha256 == sums[relpath]
        assert f.size == (mirror / relpath).stat().st_size


# ---------------------------------------------------------------- faults, without a network

PAYLOAD = bytes(range(256)) * 40                         # 10,240 bytes of "dataset"


class _Handler(http.server.BaseHTTPRequestHandler):
    """Answers GET from the FakeServer of the running test (404 when there is none)."""

    site = None

    def do_GET(self):
        url = f"http://127.0.0.1:{self.server.server_address[1]}{self.path}"
        site = _Handler.site
        page = 404 if site is None else site.pages.get(url, 404)
        if site is not None:
            site.requested.append(url)
        if callable(page):
            return page(self)
        if isinstance(page, int):
            return self.send_error(page)
        body, content_type = page if isinstance(page, tuple) else (page, "application/octet-stream")
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


_HTTPD = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
_HTTPD.daemon_threads = True
threading.Thread(target=_HTTPD.serve_forever, daemon=True).start()
BASE = f"http://127.0.0.1:{_HTTPD.server_address[1]}"
URLS = (f"{BASE}/one/tiny.bin", f"{BASE}/two/tiny.bin")


class FakeServer:
    """A web server on 127.0.0.1 for one test: pages[url] = bytes, (bytes, content type), an
    HTTP status (int) or a function of the request handler; other URLs get 404. requested lists
    the URLs asked for, in order."""

    def __init__(self, monkeypatch):
        self.pages, self.requested = {}, []
        monkeypatch.setattr(_Handler, "site", self)
        for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
            monkeypatch.delenv(var, raising=False)


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    """A one-file dataset 'tiny' in the registry; data folder in tmp_path; no mirror."""
    f = registry.FileInfo("tiny", "tiny.bin", len(PAYLOAD), hashlib.sha256(PAYLOAD).hexdigest(),
                          "train", "images", URLS)
    info = registry.DatasetInfo("tiny", "test data", "tests", "none", (1, 1), {"train": 1}, (f,))
    monkeypatch.setitem(registry.DATASETS, "tiny", info)
    monkeypatch.setenv("MINIVAE_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MINIVAE_DATA_MIRROR", raising=False)
    return f


@pytest.fixture
def server(monkeypatch):
    return FakeServer(monkeypatch)


def cache_path(f):
    return data.data_dir() / f.folder / f.name


def leftovers(f):
    """Every file in the dataset's cache folder other than the finished file."""
    folder = cache_path(f).parent
    return [p.name for p in folder.iterdir() if p.name != f.name] if folder.exists() else []


def test_download_verifies_then_reuses(tiny, server):
    server.pages[URLS[0]] = PAYLOAD
    assert data.fetch("tiny") == [cache_path(tiny)]
    assert cache_path(tiny).read_bytes() == PAYLOAD and leftovers(tiny) == []
    assert stat.S_IMODE(cache_path(tiny).stat().st_mode) == 0o644   # a shared folder: readable
    assert data.fetch("tiny") == [cache_path(tiny)]
    assert server.requested == [URLS[0]]                 # second fetch: cache hit, no network


def test_a_static_file_server_404_then_the_file(tiny, monkeypatch, tmp_path):
    """http.server serving a folder, as a web site does: a 404, then the good file."""
    (tmp_path / "site" / "good").mkdir(parents=True)
    (tmp_path / "site" / "good" / "tiny.bin").write_bytes(PAYLOAD)
    handler = functools.partial(QuietHandler, directory=str(tmp_path / "site"))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as httpd:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        try:
            base = f"http://127.0.0.1:{httpd.server_address[1]}"
            urls = (f"{base}/missing/tiny.bin", f"{base}/good/tiny.bin")
            for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
                monkeypatch.delenv(var, raising=False)
            download.download(dataclasses.replace(tiny, urls=urls), cache_path(tiny))
        finally:
            httpd.shutdown()
    assert cache_path(tiny).read_bytes() == PAYLOAD and leftovers(tiny) == []


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_falls_back_to_next_url(tiny, server):
    server.pages[URLS[0]] = 503
    server.pages[URLS[1]] = PAYLOAD
    data.fetch("tiny")
    assert cache_path(tiny).read_bytes() == PAYLOAD and server.requested == list(URLS)


@pytest.mark.parametrize("body,reason", [
    (PAYLOAD[:-100], "truncated"),
    (PAYLOAD[:-1] + b"!", "SHA-256"),
    (PAYLOAD + b"extra", "more than the expected"),
])
def test_bad_download_never_moved_into_place(tiny, server, body, reason):
    server.pages = {url: body for url in URLS}
    with pytest.raises(data.DownloadError, match=reason) as err:
        data.fetch("tiny")
    assert not cache_path(tiny).exists() and leftovers(tiny) == []
    assert str(cache_path(tiny)) in str(err.value)


def test_html_error_page_is_named(tiny, server):
    page = b"<!DOCTYPE html>\n<html><body>404 Not Found</body></html>"
    server.pages[URLS[0]] = (page, "text/html; charset=utf-8")
    server.pages[URLS[1]] = (page, "application/octet-stream")   # mislabelled: sniffed
    with pytest.raises(data.DownloadError) as err:
        data.fetch("tiny")
    assert str(err.value).count("HTML page") == 2
    assert not cache_path(tiny).exists() and leftovers(tiny) == []


@pytest.mark.parametrize("bad", [PAYLOAD[:5000], b"\0" * len(PAYLOAD)],
                         ids=["truncated", "corrupt"])
def test_bad_cached_file_is_fetched_again(tiny, server, bad):
    cache_path(tiny).parent.mkdir(parents=True)
    cache_path(tiny).write_bytes(bad)
    server.pages[URLS[0]] = PAYLOAD
    with pytest.warns(UserWarning, match="downloaded it again"):
        data.fetch("tiny")
    assert cache_path(tiny).read_bytes() == PAYLOAD


def test_offline_error_says_where_to_put_the_file(tiny):
    with pytest.raises(data.DownloadError) as err:                  # no_network: all URLs fail
        data.fetch("tiny")
    msg = str(err.value)
    assert isinstance(err.value, data.DatasetError)
    assert "file missing: tiny/tiny.bin" in msg
    assert f"save it, unchanged, as {cache_path(tiny)}" in msg
    assert all(url in msg for url in URLS) and "MINIVAE_DATA_MIRROR" in msg
    assert not cache_path(tiny).parent.exists()                     # no empty folder left


def test_real_dataset_offline_message(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIVAE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MINIVAE_DATA_MIRROR", raising=False)
    with pytest.raises(data.DownloadError) as err:
        data.load("mnist", "test")
    msg = str(err.value)
    assert str(tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz") in msg
    assert "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz" in msg
    assert "http://yann.lecun.com/exdb/mnist/t10k-images-idx3-ubyte.gz" in msg


def test_cache_dir_not_writable(tiny, server, tmp_path):
    folder = tmp_path / "cache"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as root (or similar): chmod does not stop writes")
        server.pages[URLS[0]] = PAYLOAD
        with pytest.raises(data.CacheDirError, match="MINIVAE_DATA_DIR") as err:
            data.fetch("tiny")
        assert str(folder) in str(err.value) and server.requested == []
    finally:
        folder.chmod(stat.S_IRWXU)


def test_cache_dir_cannot_be_created(tiny, server, monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MINIVAE_DATA_DIR", str(blocker / "cache"))   # works even as root
    server.pages[URLS[0]] = PAYLOAD
    with pytest.raises(data.CacheDirError, match="export MINIVAE_DATA_DIR="):
        data.fetch("tiny")


def test_a_full_disk_during_a_download_says_so_and_leaves_nothing(tiny, server, monkeypatch):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    real_open = open
    monkeypatch.setattr(download, "open", lambda path, mode: real_open("/dev/full", mode),
                        raising=False)                      # every write: ENOSPC
    server.pages[URLS[0]] = PAYLOAD
    with pytest.raises(data.CacheDirError, match="No space left on device") as err:
        data.fetch("tiny")
    assert str(cache_path(tiny).parent) in str(err.value) and "MINIVAE_DATA_DIR" in str(err.value)
    assert server.requested == [URLS[0]]                    # the next URL would not help
    assert not cache_path(tiny).parent.exists()


FETCH_TINY = """
import sys
from minivae import data
from minivae.data import registry
url, size, sha256 = sys.argv[1], int(sys.argv[2]), sys.argv[3]
f = registry.FileInfo("tiny", "tiny.bin", size, sha256, "train", "images", (url,))
registry.DATASETS["tiny"] = registry.DatasetInfo("tiny", "test data", "tests", "none", (1, 1),
                                                  {"train": 1}, (f,))
data.fetch("tiny")
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGHUP, signal.SIGINT],
                         ids=lambda sig: sig.name)
def test_a_stopped_download_leaves_nothing_after_the_next_fetch(tiny, server, sig):
    """A fetch in another process is stopped while the server sends. Ctrl-C cleans up at once;
    the other signals leave pooch's temporary, and the next fetch removes it."""
    sending, release = threading.Event(), threading.Event()

    def half_then_stall(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(PAYLOAD)))
        handler.end_headers()
        handler.wfile.write(PAYLOAD[:len(PAYLOAD) // 2])
        handler.wfile.flush()
        sending.set()
        release.wait(60)
    server.pages[URLS[0]] = half_then_stall
    p = subprocess.Popen([sys.executable, "-c", FETCH_TINY, URLS[0], str(tiny.size), tiny.sha256],
                         cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert sending.wait(60), "the fetch never reached the server"
        time.sleep(0.2)                                      # in the middle of the body
        p.send_signal(sig)
        assert p.wait(60) == -sig
    finally:
        release.set()
        if p.poll() is None:
            p.kill()
    left = leftovers(tiny)
    if sig == signal.SIGINT:
        assert left == []
    else:
        assert len(left) == 1 and download.LEFTOVER.fullmatch(left[0]), left
    server.pages[URLS[0]] = PAYLOAD
    assert data.fetch("tiny") == [cache_path(tiny)]
    assert cache_path(tiny).read_bytes() == PAYLOAD and leftovers(tiny) == []


def test_leftovers_of_older_downloads_go_other_files_stay(tiny, server):
    folder = cache_path(tiny).parent
    folder.mkdir(parents=True)
    for name in (".tiny.bin.k2j4_x.part", "tmpab_12xyz", "notes.txt", "tmp-mine"):
        (folder / name).write_bytes(b"x")                   # older minivae's, pooch's, yours
    server.pages[URLS[0]] = PAYLOAD
    data.fetch("tiny")
    assert sorted(leftovers(tiny)) == ["notes.txt", "tmp-mine"]


def test_one_download_at_a_time_into_a_folder(tiny, server, capsys):
    """A second fetch waits for the folder's lock, then finds the file the first one saved."""
    folder = cache_path(tiny).parent
    folder.mkdir(parents=True)
    server.pages[URLS[0]] = PAYLOAD
    result = []
    with download._downloading_into(folder):               # another download holds the folder
        second = threading.Thread(target=lambda: result.append(data.fetch("tiny")))
        second.start()
        time.sleep(0.5)
        assert second.is_alive()
        cache_path(tiny).write_bytes(PAYLOAD)               # ... and saves the file
    second.join(30)
    assert result == [[cache_path(tiny)]] and server.requested == []
    assert f"waiting for another download into {folder}" in capsys.readouterr().err


def test_mirror_read_in_place_and_verified(tiny, monkeypatch, tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "tiny").mkdir(parents=True)
    (mirror / "tiny" / "tiny.bin").write_bytes(PAYLOAD)
    monkeypatch.setenv("MINIVAE_DATA_MIRROR", str(mirror))
    assert data.fetch("tiny") == [mirror / "tiny" / "tiny.bin"]
    assert not data.data_dir().exists()                          # nothing copied
    (mirror / "tiny" / "tiny.bin").write_bytes(PAYLOAD[:-1] + b"!")
    with pytest.raises(data.ChecksumError, match="mirror file"):
        data.fetch("tiny")
    assert (mirror / "tiny" / "tiny.bin").read_bytes()[-1:] == b"!"   # mirror left alone


def test_mirror_without_the_file_says_so(tiny, monkeypatch, tmp_path):
    monkeypatch.setenv("MINIVAE_DATA_MIRROR", str(tmp_path / "empty-mirror"))
    with pytest.raises(data.DownloadError, match=r"which has no tiny/tiny\.bin"):
        data.fetch("tiny")


def test_data_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIVAE_DATA_DIR", str(tmp_path / "mine"))
    assert data.data_dir() == tmp_path / "mine"
    monkeypatch.delenv("MINIVAE_DATA_DIR")
    if (REPO / "pyproject.toml").is_file() and (REPO / "data" / "README.md").is_file():
        assert data.data_dir() == REPO / "data"                 # source checkout
    monkeypatch.setattr(paths, "source_checkout_data_dir", lambda: None)   # as if installed
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.data_dir() == tmp_path / "xdg" / "minivae"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.data_dir() == tmp_path / "home" / ".cache" / "minivae"


# ---------------------------------------------------------------- API surface

def test_registry_and_names():
    assert list(data.DATASETS) == ["mnist", "fashion-mnist", "binarized-mnist", "sprites"]
    assert [i.name for i in data.list_datasets()] == list(data.DATASETS)
    for info in data.list_datasets():
        assert info.description and info.source and info.license and len(info.image_shape) == 2
        assert {f.split for f in info.files} <= set(info.splits)
        for f in info.files:
            assert f.size > 0 and len(f.sha256) == 64 and int(f.sha256, 16) >= 0
            assert f.urls and all(u.endswith("/" + f.name) for u in f.urls)
    assert data.fetch("sprites") == []


def test_unknown_name_or_split():
    with pytest.raises(ValueError, match="mnist, fashion-mnist, binarized-mnist, sprites"):
        data.load("cifar10")
    with pytest.raises(ValueError, match="valid splits: train, valid, test"):
        data.load("binarized-mnist", "validation")
    with pytest.raises(ValueError, match="valid splits: train, test"):
        data.load("sprites", "valid")


def test_dataset_is_frozen():
    ds = data.load("sprites", "test")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.x = None
    assert "sprites" in repr(ds) and "(768, 1024)" in repr(ds)


# ---------------------------------------------------------------- IDX reader

def idx_bytes(arr, magic):
    """IDX file of uint8 array arr: magic, big-endian sizes, payload."""
    dims = b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return magic.to_bytes(4, "big") + dims + arr.astype(np.uint8).tobytes()


def test_idx_roundtrip_plain_and_gzip():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = np.arange(5, dtype=np.uint8)
    for wrap in (lambda b: b, gzip.compress):
        assert np.array_equal(read_idx_images(wrap(idx_bytes(images, 2051))), images)
        assert np.array_equal(read_idx_labels(wrap(idx_bytes(labels, 2049))), labels)


def test_idx_bad_magic():
    labels = idx_bytes(np.arange(5, dtype=np.uint8), 2049)
    with pytest.raises(data.FormatError, match="magic number 2049, expected 2051"):
        read_idx_images(labels)


def test_idx_truncated_payload():
    images = idx_bytes(np.zeros((3, 28, 28), np.uint8), 2051)
    with pytest.raises(data.FormatError, match=r"dims \(3, 28, 28\).*truncated"):
        read_idx_images(images[:-1])
    with pytest.raises(data.FormatError, match="too short"):
        read_idx_images(images[:3])
    with pytest.raises(data.FormatError, match="gzip"):
        read_idx_images(gzip.compress(images)[:-20])


# ---------------------------------------------------------------- .amat reader

def test_amat_fast_and_general_paths():
    rng = np.random.default_rng(1)
    bits = rng.integers(0, 2, size=(3, 784), dtype=np.uint8)
    text = "".join(" ".join(map(str, row)) + "\n" for row in bits)
    assert np.array_equal(read_amat(text.encode()), bits)                   # exact layout
    messy = text.replace("\n", " \r\n").replace(" ", "  ")                  # CRLF, wide spaces
    assert np.array_equal(read_amat(messy.encode()), bits)
    assert np.array_equal(read_amat(text.rstrip("\n").encode()), bits)      # no final newline


def test_amat_errors():
    line = " ".join(["0"] * 784) + "\n"
    with pytest.raises(data.FormatError, match="line 2 has 783 values, expected 784"):
        read_amat((line + line[2:] + line).encode())
    with pytest.raises(data.FormatError, match=r"line 1 has byte b'2'"):
        read_amat(("2" + line[1:]).encode())
    with pytest.raises(data.FormatError, match="no space between"):
        read_amat(line.replace("0 0", "00", 1).encode())
    with pytest.raises(data.FormatError, match="no values"):
        read_amat(b"\n")


# ---------------------------------------------------------------- sprites

SPRITES_SHA256 = "1648f8ba287052a98314a65efd53f884c769aab6662a78e4fbb3b2a8c70f86b3"


def sprites_digest():
    images, factors = sprites.generate()
    test_idx = sprites.split_indices()["test"].astype("<i8")
    return hashlib.sha256(images.tobytes() + factors.tobytes() + test_idx.tobytes()).hexdigest()


def test_sprites_deterministic():
    (a, fa), (b, fb) = sprites.generate(), sprites.generate()
    assert a.tobytes() == b.tobytes() and fa.tobytes() == fb.tobytes()
    assert sprites_digest() == SPRITES_SHA256    # same bytes on every machine and NumPy version


def test_sprites_grid_complete():
    images, factors = sprites.generate()
    n = int(np.prod(sprites.GRID))
    assert images.shape == (n, 32, 32) == (7680, 32, 32) and factors.shape == (n, 5)
    assert set(np.unique(images).tolist()) == {0, 1}
    idx = sprites.factor_indices(factors)
    for f, values in enumerate(sprites.FACTOR_VALUES):
        assert np.array_equal(np.asarray(values)[idx[:, f]], factors[:, f])  # exact values
    flat = np.ravel_multi_index(tuple(idx.T), sprites.GRID)
    assert np.array_equal(flat, np.arange(n))          # every combination once, in C order


def test_sprites_splits():
    images, factors = sprites.generate()
    split = sprites.split_indices()
    assert np.array_equal(np.sort(np.concatenate([split["train"], split["test"]])), np.arange(7680))
    for name, size in [("train", 6912), ("test", 768)]:
        ds = data.load("sprites", name)
        assert len(ds) == size == len(split[name]) and ds.image_shape == (32, 32)
        assert ds.x.dtype == np.float32 and ds.x.flags.c_contiguous
        assert ds.factors.dtype == np.float64
        assert np.array_equal(ds.x.reshape(-1, 32, 32), images[split[name]])
        assert np.array_equal(ds.factors, factors[split[name]])
        assert np.array_equal(ds.y, ds.factors[:, 0].astype(np.int64))
        assert ds.factor_names == ("shape", "scale", "orientation", "pos_x", "pos_y")


def test_sprites_images_distinct_and_shapes_differ():
    images, _ = sprites.generate()
    flat = images.reshape(len(images), -1).astype(np.int16)
    assert len({row.tobytes() for row in flat}) == len(flat)        # no two images alike
    by_shape = flat.reshape(3, -1, 1024)                               # (shape, rest, pixels)
    for a, b in [(0, 1), (0, 2), (1, 2)]:                              # same other factors
        assert np.abs(by_shape[a] - by_shape[b]).sum(axis=1).min() >= 4
    patches = np.array([sprites.render_patch(s, c, o).ravel() for s in sprites.SHAPES
                        for c in sprites.SCALES for o in sprites.ORIENTATIONS], np.int16)
    dist = np.abs(patches[:, None] - patches[None]).sum(axis=2)       # (120, 120) pixels apart
    assert dist[~np.eye(len(patches), dtype=bool)].min() >= 4        # orientations resolved
    areas = images.sum(axis=(1, 2)).reshape(sprites.GRID)             # moving keeps pixels
    assert np.all(areas == areas[..., :1, :1])
    assert images[:, 0].sum() == images[:, -1].sum() == images[:, :, 0].sum() == 0   # not clipped


# ---------------------------------------------------------------- dynamic binarization, batches

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_dynamic_binarize_mean(dtype):
    n, p = 4000, np.linspace(0.0, 1.0, 21)                             # (21,) probabilities
    x = np.tile(p, (n, 1)).astype(dtype)                               # (N, 21)
    xb = data.dynamic_binarize(x, np.random.default_rng(0))
    assert xb.dtype == dtype and xb.shape == x.shape
    assert set(np.unique(xb).tolist()) <= {0.0, 1.0}
    tol = 5 * np.sqrt(p * (1 - p) / n) + 1e-12                        # 5 standard errors
    assert np.all(np.abs(xb.mean(axis=0) - p) <= tol)                  # p = 0, 1: exact
    again = data.dynamic_binarize(x, np.random.default_rng(0))
    assert np.array_equal(xb, again)                                   # the rng is the only source
    u = np.random.default_rng(0).random(x.shape, np.float32 if dtype == np.float32 else None)
    assert np.array_equal(xb, (u < x).astype(dtype))                   # the formula, same draws


def test_dynamic_binarize_needs_generator():
    with pytest.raises(TypeError, match=r"numpy\.random\.Generator"):
        data.dynamic_binarize(np.zeros((2, 3)), 0)


def test_batches():
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    plain = list(data.batches(x, 4))
    assert [len(b) for b in plain] == [4, 4, 2] and np.array_equal(np.concatenate(plain), x)
    assert [len(b) for b in data.batches(x, 4, drop_last=True)] == [4, 4]
    shuffled = list(data.batches(x, 3, rng=np.random.default_rng(0)))
    rows = np.concatenate(shuffled)
    assert not np.array_equal(rows, x) and np.array_equal(np.sort(rows[:, 0]), x[:, 0])
    again = np.concatenate(list(data.batches(x, 3, rng=np.random.default_rng(0))))
    assert np.array_equal(rows, again)
    with pytest.raises(ValueError, match="positive integer"):
        list(data.batches(x, 0))
