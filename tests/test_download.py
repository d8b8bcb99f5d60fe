"""utils.download.fetch against a local HTTP server: verified, cached, atomic, and clear when it fails."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time

import pytest

from utils import download
from utils.download import (
    ChecksumError,
    DownloadError,
    OfflineError,
    fetch,
    file_hash,
    mirror_url,
    stamp_path,
    verify_file,
)
from utils.machine import repo_root

PAYLOAD = bytes(range(256)) * 400  # 100 KiB, so a truncated transfer really is cut short
MD5 = hashlib.md5(PAYLOAD).hexdigest()
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def served(http_server):
    """(server, url) with PAYLOAD at /files/payload.bin."""
    return http_server, http_server.add_file("files/payload.bin", PAYLOAD)


@pytest.mark.parametrize("known_hash", [f"sha256:{SHA256}", f"md5:{MD5}", f"MD5:{MD5.upper()}"])
def test_good_file_is_downloaded_verified_and_cached(served, course_cache, known_hash, list_files):
    server, url = served
    target = course_cache / "models" / "payload.bin"
    path = fetch(url, target, known_hash=known_hash, size=len(PAYLOAD), progressbar=False)
    assert path == target
    assert path.read_bytes() == PAYLOAD
    assert server.hits["/files/payload.bin"] == 1
    # no temporary or probe files left; the stamp records that the file verified
    assert list_files(target.parent) == ["payload.bin", "payload.bin.verified"]

    again = fetch(url, target, known_hash=known_hash, size=len(PAYLOAD), progressbar=False)
    assert again == target
    assert server.hits["/files/payload.bin"] == 1  # served from the cache, no second request


def test_wrong_hash_raises_and_leaves_nothing(served, course_cache, list_files):
    server, url = served
    target = course_cache / "d" / "payload.bin"
    with pytest.raises(ChecksumError, match="does not match"):
        fetch(url, target, known_hash="sha256:" + "0" * 64, progressbar=False)
    assert server.hits["/files/payload.bin"] == 1
    assert not target.exists()
    assert list_files(target.parent) == []


def test_wrong_size_of_a_good_download_is_refused(served, course_cache):
    _, url = served
    target = course_cache / "payload.bin"
    with pytest.raises(ChecksumError, match=f"should be {len(PAYLOAD) + 1:,} bytes"):
        fetch(url, target, known_hash=f"md5:{MD5}", size=len(PAYLOAD) + 1, progressbar=False)


def test_truncated_transfer_raises_and_leaves_nothing(served, course_cache, list_files):
    server, url = served
    server.set_fault("truncate")
    target = course_cache / "d" / "payload.bin"
    with pytest.raises((DownloadError, ChecksumError)) as info:
        fetch(url, target, known_hash=f"sha256:{SHA256}", progressbar=False)
    assert "nothing was saved" in str(info.value)
    assert server.hits["/files/payload.bin"] >= 1
    assert list_files(target.parent) == []


@pytest.mark.parametrize("status", ["404", "500"])
def test_http_errors_raise_download_error_and_leave_nothing(served, course_cache, status, list_files):
    server, url = served
    server.set_fault(status)
    target = course_cache / "d" / "payload.bin"
    with pytest.raises(DownloadError) as info:
        fetch(url, target, known_hash=f"md5:{MD5}", progressbar=False)
    message = str(info.value)
    assert status in message and url in message and str(target) in message
    assert list_files(target.parent) == []


def test_slow_server_times_out_as_download_error(served, course_cache, list_files):
    server, url = served
    server.set_fault("slow")
    server.delay = 1.5
    target = course_cache / "d" / "payload.bin"
    start = time.monotonic()
    with pytest.raises(DownloadError, match="Timeout"):
        fetch(url, target, known_hash=f"md5:{MD5}", timeout=0.3, progressbar=False)
    assert time.monotonic() - start < 1.4
    assert list_files(target.parent) == []


def test_cached_file_with_wrong_hash_is_refused_not_replaced_and_force_replaces_it(served, course_cache):
    server, url = served
    target = course_cache / "payload.bin"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"tampered")
    with pytest.raises(ChecksumError, match="Delete it"):
        fetch(url, target, known_hash=f"sha256:{SHA256}", progressbar=False)
    assert target.read_bytes() == b"tampered"
    assert server.hits["/files/payload.bin"] == 0

    path = fetch(url, target, known_hash=f"sha256:{SHA256}", force=True, progressbar=False)
    assert path.read_bytes() == PAYLOAD
    assert server.hits["/files/payload.bin"] == 1


def test_offline_forced_raises_fast_naming_url_and_path(served, course_cache, monkeypatch):
    server, url = served
    monkeypatch.setenv("SAMCOURSE_OFFLINE", "1")
    target = course_cache / "payload.bin"
    start = time.monotonic()
    with pytest.raises(OfflineError) as info:
        fetch(url, target, known_hash=f"md5:{MD5}", progressbar=False)
    assert time.monotonic() - start < 1.0
    assert url in str(info.value) and str(target) in str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert server.hits["/files/payload.bin"] == 0 and not target.exists()


def test_offline_forced_still_serves_a_verified_cached_file(served, course_cache, monkeypatch):
    server, url = served
    target = course_cache / "payload.bin"
    fetch(url, target, known_hash=f"md5:{MD5}", progressbar=False)
    monkeypatch.setenv("SAMCOURSE_OFFLINE", "1")
    assert fetch(url, target, known_hash=f"md5:{MD5}", progressbar=False).read_bytes() == PAYLOAD
    assert server.hits["/files/payload.bin"] == 1


def test_unreachable_port_raises_offline_error_quickly(course_cache, closed_port):
    url = f"http://127.0.0.1:{closed_port}/payload.bin"
    target = course_cache / "payload.bin"
    start = time.monotonic()
    with pytest.raises(OfflineError) as info:
        fetch(url, target, known_hash=f"md5:{MD5}", progressbar=False)
    assert time.monotonic() - start < 5.0
    assert url in str(info.value) and str(target) in str(info.value)
    assert not target.exists()


def test_cache_folder_that_cannot_be_created_raises_permission_error(served, tmp_path):
    _, url = served
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a regular file where the cache folder should be")
    target = blocker / "cache" / "payload.bin"  # mkdir fails even for root
    with pytest.raises(PermissionError, match="SAMCOURSE_CACHE_DIR") as info:
        fetch(url, target, known_hash=f"md5:{MD5}", progressbar=False)
    assert str(target.parent) in str(info.value)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_cache_folder_raises_permission_error(served, tmp_path):
    _, url = served
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match="SAMCOURSE_CACHE_DIR"):
            fetch(url, folder / "payload.bin", known_hash=f"md5:{MD5}", progressbar=False)
    finally:
        folder.chmod(0o700)


@pytest.mark.parametrize("bad", ["", "abc", MD5, "crc32:1234", "sha1:" + "0" * 40, None])
def test_bad_hash_format_is_a_value_error_before_any_request(served, course_cache, bad):
    server, url = served
    with pytest.raises(ValueError, match="known_hash|algorithm"):
        fetch(url, course_cache / "payload.bin", known_hash=bad, progressbar=False)
    assert sum(server.hits.values()) == 0


def test_verify_file_and_file_hash(tmp_path):
    path = tmp_path / "payload.bin"
    path.write_bytes(PAYLOAD)
    assert file_hash(path, "md5") == MD5 and file_hash(path) == SHA256
    assert verify_file(path, f"sha256:{SHA256}", size=len(PAYLOAD)) == path
    with pytest.raises(ChecksumError):
        verify_file(path, f"md5:{'f' * 32}")
    with pytest.raises(FileNotFoundError):
        verify_file(tmp_path / "missing.bin", f"md5:{MD5}")


def test_mirror_url_swaps_scheme_and_host_only(monkeypatch):
    url = "https://zenodo.org/records/13358372/files/busi_256.npz?download=1"
    monkeypatch.delenv("SAMCOURSE_MIRROR", raising=False)
    assert mirror_url(url) == url
    monkeypatch.setenv("SAMCOURSE_MIRROR", "http://127.0.0.1:8000/course-mirror/")
    assert mirror_url(url) == "http://127.0.0.1:8000/course-mirror/records/13358372/files/busi_256.npz?download=1"
    monkeypatch.setenv("SAMCOURSE_MIRROR", "ftp://example.org")
    with pytest.raises(ValueError, match="SAMCOURSE_MIRROR"):
        mirror_url(url)


def test_failed_forced_redownload_keeps_the_old_verified_copy(served, course_cache, list_files):
    server, url = served
    target = course_cache / "d" / "payload.bin"
    fetch(url, target, known_hash=f"md5:{MD5}", progressbar=False)
    target.write_bytes(b"stale")  # a corrupted copy the user asks to replace
    server.set_fault("500")
    with pytest.raises(DownloadError):
        fetch(url, target, known_hash=f"md5:{MD5}", force=True, progressbar=False)
    assert target.read_bytes() == b"stale"  # nothing half-written replaced it
    assert list_files(target.parent) == ["payload.bin", "payload.bin.verified"]  # (the stamp no longer matches)
    server.set_fault(None)
    assert fetch(url, target, known_hash=f"md5:{MD5}", force=True, progressbar=False).read_bytes() == PAYLOAD


def test_mirror_serves_registry_paths_and_hashes_still_apply(served, course_cache, monkeypatch):
    server, url = served
    monkeypatch.setenv("SAMCOURSE_MIRROR", server.base_url)
    original = "https://example.invalid/files/payload.bin"
    target = course_cache / "m" / "payload.bin"
    assert fetch(original, target, known_hash=f"md5:{MD5}", progressbar=False).read_bytes() == PAYLOAD
    with pytest.raises(ChecksumError):
        fetch(original, course_cache / "m2" / "payload.bin", known_hash="md5:" + "0" * 32, progressbar=False)


# Calls that open a connection or fetch a URL. Only utils/download.py may use them (its fetch is
# hash-checked and atomic); utils/machine.py may open a bare TCP probe to tell whether there is network.
_NETWORK_CALLS = re.compile(
    r"requests\.(get|post|head|Session)|urllib\.request|urlopen|urlretrieve|torch\.hub|load_state_dict_from_url"
    r"|pooch\.(retrieve|create|HTTPDownloader)|http\.client|socket\.(create_connection|socket)|wget|curl "
)
_MAY_USE_NETWORK = {"utils/download.py": "fetch", "utils/machine.py": "network_available's TCP probe"}


def _code_sources():
    root = repo_root()
    for path in sorted([*root.glob("utils/**/*.py"), *root.glob("benchmarks/*.py")]):
        yield path.relative_to(root).as_posix(), path.read_text()
    for path in sorted(root.glob("notebooks/*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        # The first code cell installs the course in Colab (git clone / pip): a shell step, not a download.
        code = [("".join(c["source"])) for c in cells if c["cell_type"] == "code"][1:]
        yield path.relative_to(root).as_posix(), "\n".join(code)


def test_every_download_goes_through_the_verified_fetch():
    sources = dict(_code_sources())
    assert any(name.endswith(".ipynb") for name in sources) and "utils/models.py" in sources
    offenders = {name: sorted({m.group(0) for m in _NETWORK_CALLS.finditer(text)}) for name, text in sources.items()}
    offenders = {name: calls for name, calls in offenders.items() if calls and name not in _MAY_USE_NETWORK}
    assert not offenders, f"network calls outside utils/download.py: {offenders}"
    # The pattern does find what it looks for.
    assert _NETWORK_CALLS.search(sources["utils/download.py"]) and _NETWORK_CALLS.search(sources["utils/machine.py"])


# --------------------------------------------------------------------------------------------------
# The verification stamp: a file is hashed once, and a changed file is hashed (and refused) again
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def hash_calls(monkeypatch):
    """Count the times verify_file reads a whole file to hash it."""
    calls = []
    real = download.file_hash

    def counting(path, algorithm="sha256"):
        calls.append(str(path))
        return real(path, algorithm)

    monkeypatch.setattr(download, "file_hash", counting)
    return calls


@pytest.fixture
def payload_file(tmp_path):
    path = tmp_path / "payload.bin"
    path.write_bytes(PAYLOAD)
    return path


def test_stamp_skips_rehashing_an_unchanged_file(payload_file, hash_calls, list_files):
    known = f"sha256:{SHA256}"
    assert verify_file(payload_file, known, size=len(PAYLOAD)) == payload_file
    assert len(hash_calls) == 1
    stat = payload_file.stat()
    record = json.loads(stamp_path(payload_file).read_text())
    assert record == {"algorithm": "sha256", "digest": SHA256, "size": len(PAYLOAD), "mtime_ns": stat.st_mtime_ns}
    for _ in range(3):
        assert verify_file(payload_file, known, size=len(PAYLOAD)) == payload_file
    assert len(hash_calls) == 1  # the stamp matched: the file was not read again
    assert list_files(payload_file.parent) == ["payload.bin", "payload.bin.verified"]  # no temporary file left


def test_fetch_of_a_cached_file_uses_the_stamp(served, course_cache, hash_calls):
    server, url = served
    target = course_cache / "payload.bin"
    fetch(url, target, known_hash=f"md5:{MD5}", progressbar=False)
    hashed = len(hash_calls)
    assert fetch(url, target, known_hash=f"md5:{MD5}", progressbar=False).read_bytes() == PAYLOAD
    assert len(hash_calls) == hashed and server.hits["/files/payload.bin"] == 1


def test_a_rewritten_file_of_the_same_size_is_hashed_again_and_refused(payload_file, hash_calls):
    known = f"sha256:{SHA256}"
    verify_file(payload_file, known)
    mtime = payload_file.stat().st_mtime_ns
    payload_file.write_bytes(bytes(reversed(PAYLOAD)))  # same size, other bytes
    os.utime(payload_file, ns=(mtime + 10**9, mtime + 10**9))  # and certainly a new mtime
    with pytest.raises(ChecksumError, match="Refusing"):
        verify_file(payload_file, known, size=len(PAYLOAD))
    assert len(hash_calls) == 2
    assert not stamp_path(payload_file).exists()  # the stale stamp is gone with the refusal


def test_a_replaced_file_with_the_old_mtime_but_another_size_is_refused(payload_file):
    verify_file(payload_file, f"md5:{MD5}")
    mtime = payload_file.stat().st_mtime_ns
    payload_file.write_bytes(PAYLOAD + b"!")
    os.utime(payload_file, ns=(mtime, mtime))
    with pytest.raises(ChecksumError):
        verify_file(payload_file, f"md5:{MD5}")


@pytest.mark.parametrize(
    "forged",
    [
        {"digest": "0" * 64},  # a stamp for another hash
        {"algorithm": "md5"},  # a stamp made with another algorithm
        {"size": len(PAYLOAD) + 1},
        {"mtime_ns": 1},
    ],
)
def test_a_stamp_that_does_not_match_is_ignored(payload_file, hash_calls, forged):
    stat = payload_file.stat()
    good = {"algorithm": "sha256", "digest": SHA256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    stamp_path(payload_file).write_text(json.dumps({**good, **forged}))
    assert verify_file(payload_file, f"sha256:{SHA256}") == payload_file
    assert len(hash_calls) == 1  # the file was hashed, not trusted
    assert json.loads(stamp_path(payload_file).read_text()) == good  # and the stamp now says what is true


@pytest.mark.parametrize("content", [b"", b"{not json", b"\xff\xfe\x00", b"[1, 2]", b'{"digest": null}'])
def test_an_unreadable_stamp_is_ignored(payload_file, hash_calls, content):
    stamp_path(payload_file).write_bytes(content)
    assert verify_file(payload_file, f"md5:{MD5}") == payload_file
    assert len(hash_calls) == 1
    assert json.loads(stamp_path(payload_file).read_text())["digest"] == MD5


def test_a_stamp_that_cannot_be_written_costs_only_a_rehash(payload_file, hash_calls, monkeypatch, list_files):
    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(download.tempfile, "mkstemp", no_space)
    assert verify_file(payload_file, f"md5:{MD5}") == payload_file
    assert verify_file(payload_file, f"md5:{MD5}") == payload_file
    assert len(hash_calls) == 2
    assert list_files(payload_file.parent) == ["payload.bin"]


def test_a_stamp_write_that_fails_halfway_leaves_nothing(payload_file, monkeypatch, list_files):
    def broken_replace(source, target):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(download.os, "replace", broken_replace)
    verify_file(payload_file, f"md5:{MD5}")
    assert list_files(payload_file.parent) == ["payload.bin"]  # the temporary stamp was removed


def test_stamp_false_always_hashes_and_writes_nothing(payload_file, hash_calls, list_files):
    for _ in range(2):
        verify_file(payload_file, f"md5:{MD5}", stamp=False)
    assert len(hash_calls) == 2
    assert list_files(payload_file.parent) == ["payload.bin"]


def test_large_downloads_use_large_chunks_and_keep_the_progress_bar(served, course_cache, monkeypatch):
    import pooch

    made = []
    real = pooch.HTTPDownloader

    def recording(*args, **kwargs):
        made.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(pooch, "HTTPDownloader", recording)
    _, url = served
    fetch(url, course_cache / "payload.bin", known_hash=f"md5:{MD5}")
    assert made and made[0]["chunk_size"] >= 1 << 20 and made[0]["progressbar"] is True
    assert (course_cache / "payload.bin").read_bytes() == PAYLOAD
