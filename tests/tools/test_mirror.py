"""utils.tools.mirror: the instructor's recipe as docs/instructor.md writes it (make prefetch, make mirror,
SAMCOURSE_MIRROR on a student machine) works end to end on 127.0.0.1, and the server serves its table only."""

from __future__ import annotations

import http.client
import re
import shlex
import threading
import time
from urllib.parse import urlsplit

import pytest

from utils import datasets, models
from utils.download import ChecksumError, fetch, verify_file
from utils.machine import repo_root
from utils.tools import mirror as course_mirror
from utils.tools import prefetch

from fakes import npz_bytes  # the mirror fixture (the stand-in "internet" with patched hashes): tests/conftest.py

DOC = repo_root() / "docs" / "instructor.md"


def _request(server: course_mirror.MirrorServer, path: str, method: str = "GET") -> tuple[int, bytes, dict]:
    """Send ``path`` exactly as written (no client-side normalisation of ``..`` or ``%2e``)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        connection.close()


@pytest.fixture
def small_server(tmp_path):
    folder = tmp_path / "cache" / "medsegbench"
    folder.mkdir(parents=True)
    (folder / "busi_256.npz").write_bytes(b"served bytes")
    (folder / "secret.txt").write_text("never served")
    (tmp_path / "cache" / "gone.npz").write_bytes(b"soon deleted")
    routes = {
        "/records/1/files/busi_256.npz": folder / "busi_256.npz",
        "/records/1/files/gone.npz": tmp_path / "cache" / "gone.npz",
    }
    with course_mirror.MirrorServer(routes) as server:
        yield server, folder


def test_serves_each_route_at_its_url_path_and_ignores_the_query(small_server):
    server, _ = small_server
    assert server.url == f"http://127.0.0.1:{server.port}" and server.port > 0
    status, body, headers = _request(server, "/records/1/files/busi_256.npz?download=1")
    assert (status, body, headers["Content-Length"]) == (200, b"served bytes", "12")
    status, body, headers = _request(server, "/records/1/files/busi_256.npz", "HEAD")
    assert (status, body, headers["Content-Length"]) == (200, b"", "12")
    assert server.hits["/records/1/files/busi_256.npz"] == 2


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/records/1/files/",
        "/records/1/files/secret.txt",  # beside a served file, but not in the table
        "/records/1/files/busi_256.npz/",
        "/records/1/files/../files/busi_256.npz",
        "/records/1/files/%2e%2e/files/secret.txt",
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "//etc/passwd",
        "/etc/passwd",
        "/medsegbench/busi_256.npz",  # the cache folder's own layout: not a URL path of the registry
    ],
)
def test_anything_outside_the_table_is_404(small_server, path):
    server, folder = small_server
    status, body, _ = _request(server, path)
    assert status == 404
    assert b"never served" not in body and b"served bytes" not in body and b"root:" not in body


def test_a_route_whose_file_is_gone_is_404_and_other_methods_are_refused(small_server):
    server, folder = small_server
    (folder.parent / "gone.npz").unlink()
    assert _request(server, "/records/1/files/gone.npz")[0] == 404
    assert _request(server, "/records/1/files/busi_256.npz", "POST")[0] == 501
    assert _request(server, "/records/1/files/busi_256.npz", "PUT")[0] == 501


@pytest.mark.parametrize("key", ["records/1/a.npz", "/a.npz?download=1", "", "/a#b"])
def test_a_route_that_is_not_a_url_path_is_refused(tmp_path, key):
    with pytest.raises(ValueError, match="URL path"):
        course_mirror.MirrorServer({key: tmp_path / "a.npz"})


def test_full_mode_routes_are_the_registry_url_paths(course_cache):
    routes = course_mirror.full_mode_routes()
    assert routes["/segment_anything/sam_vit_b_01ec64.pth"] == course_cache / "models" / "sam_vit_b_01ec64.pth"
    assert routes["/records/13358372/files/busi_256.npz"] == course_cache / "medsegbench" / "busi_256.npz"
    assert routes["/records/10519652/files/breastmnist_224.npz"] == course_cache / "medmnist" / "breastmnist_224.npz"
    assert len(routes) == len(prefetch.full_mode_files())


# --------------------------------------------------------------------------------------------------
# The recipe of docs/instructor.md, step by step
# --------------------------------------------------------------------------------------------------


def _recipe_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def _make_mirror_args() -> list[str]:
    """The arguments ``make mirror`` passes to ``python -m utils.tools.mirror`` (defaults filled in, no ARGS)."""
    recipe = re.search(r"^mirror:.*\n\t(.*)$", (repo_root() / "Makefile").read_text(), flags=re.M)
    assert recipe, "the Makefile has no mirror target"
    command = recipe.group(1)
    assert "-m utils.tools.mirror" in command
    command = re.sub(r"\$\(or \$\(PORT\),(\d+)\)", r"\1", command.split("-m utils.tools.mirror", 1)[1])
    return shlex.split(command.replace("$(ARGS)", ""))


def test_the_doc_recipe_uses_make_mirror_and_the_port_it_serves():
    text = "\n".join(_recipe_blocks())
    assert "make prefetch" in text and "make mirror" in text and "http.server" not in text
    exported = re.search(r"export SAMCOURSE_MIRROR=http://<[^>]+>:(\d+)", text)
    assert exported, "the recipe must tell students what to export"
    args = _make_mirror_args()
    assert args[args.index("--port") + 1] == exported.group(1)
    assert args[args.index("--host") + 1] == "0.0.0.0"  # the room reaches it, not only the instructor's machine


@pytest.fixture
def stand_ins(mirror, monkeypatch):
    """Small stand-ins for every full-mode file on the "internet" server, with their hashes registered."""
    mirror.checkpoint("sam_vit_b", b"stand-in checkpoint " * 500)
    for flag in prefetch.FULL_MODE_MEDSEGBENCH:
        mirror.medsegbench(flag, 256, npz_bytes(test_images=[[ord(c) for c in flag]]))
    for flag in prefetch.FULL_MODE_MEDMNIST:
        mirror.medmnist(flag, 224, npz_bytes(test_images=[[ord(c) for c in flag]]))
    return mirror


class LoopbackMirror(course_mirror.MirrorServer):
    """``make mirror`` listens on 0.0.0.0:8000; tests listen on 127.0.0.1 and a free port only."""

    made: list = []

    def __init__(self, routes, host, port, **kwargs):
        self.asked = (host, port)
        super().__init__(routes, "127.0.0.1", 0, **kwargs)
        LoopbackMirror.made.append(self)


def test_the_instructor_recipe_as_written(stand_ins, tmp_path, monkeypatch, capsys, list_files):
    internet = stand_ins.server
    # 1. `make prefetch` on the instructor's machine, where the network is good.
    assert prefetch.main([]) == 0
    instructor_files = prefetch.full_mode_files()
    assert all(verify_file(f.path, f.known_hash, f.size) for f in instructor_files)

    # 2. `make mirror` on the instructor's machine (run as the Makefile runs it; it serves until stopped).
    monkeypatch.setattr(course_mirror, "MirrorServer", LoopbackMirror)
    LoopbackMirror.made.clear()
    exit_codes: list[int] = []
    serving = threading.Thread(target=lambda: exit_codes.append(course_mirror.main(_make_mirror_args())), daemon=True)
    serving.start()
    deadline = time.monotonic() + 30
    while not LoopbackMirror.made and serving.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert LoopbackMirror.made, f"make mirror did not start: {capsys.readouterr()}"
    server = LoopbackMirror.made[0]
    try:
        assert server.asked == ("0.0.0.0", 8000)
        printed = capsys.readouterr().out
        assert f"Serving {len(instructor_files)} of {len(instructor_files)} files" in printed
        assert "export SAMCOURSE_MIRROR=http://" in printed

        # 3. A student machine: an empty cache, SAMCOURSE_MIRROR set, and the internet out of reach.
        internet.set_fault("500")
        hits_before = sum(internet.hits.values())
        student = tmp_path / "student-cache"
        monkeypatch.setenv("SAMCOURSE_CACHE_DIR", str(student))
        monkeypatch.setenv("SAMCOURSE_MIRROR", server.url)
        # what the notebooks call...
        assert models.checkpoint_for("sam_vit_b").is_relative_to(student)
        for flag in prefetch.FULL_MODE_MEDSEGBENCH:
            datasets.download_medsegbench(flag, 256, progressbar=False)
        for flag in prefetch.FULL_MODE_MEDMNIST:
            datasets.download_medmnist(flag, 224, progressbar=False)
        # ...left every full-mode file verified in the student's cache, byte for byte the instructor's
        student_files = prefetch.full_mode_files()
        for theirs, ours in zip(student_files, instructor_files):
            fetched = fetch(theirs.url, theirs.path, theirs.known_hash, size=theirs.size, progressbar=False)
            assert fetched.is_relative_to(student) and fetched.read_bytes() == ours.path.read_bytes()
        assert all(count == 1 for count in server.hits.values()) and len(server.hits) == len(student_files)
        assert sum(internet.hits.values()) == hits_before  # everything came from the mirror

        # A file that goes bad on the instructor's machine is refused by the student's machine.
        busi = next(f for f in instructor_files if "busi" in f.label)
        busi.path.write_bytes(busi.path.read_bytes()[::-1])
        other = tmp_path / "another-student" / "busi_256.npz"
        with pytest.raises(ChecksumError):
            fetch(busi.url, other, busi.known_hash, progressbar=False)
        assert list_files(other.parent) == []
    finally:
        server.stop()
        serving.join(timeout=10)
    assert exit_codes == [0]


def test_make_mirror_with_an_empty_cache_says_to_prefetch(course_cache, monkeypatch, capsys):
    monkeypatch.setattr(course_mirror, "MirrorServer", LoopbackMirror)
    LoopbackMirror.made.clear()
    assert course_mirror.main(_make_mirror_args()) == 1
    assert not LoopbackMirror.made
    captured = capsys.readouterr()
    assert "make prefetch" in captured.err and captured.out.count("missing") == len(prefetch.full_mode_files())


def test_a_corrupt_cached_file_is_not_served(stand_ins):
    assert prefetch.main([]) == 0
    busi = next(f for f in prefetch.full_mode_files() if "busi" in f.label)
    busi.path.write_bytes(b"corrupt")
    routes, rows = course_mirror.cached_routes()
    assert urlsplit(busi.url).path not in routes and len(routes) == len(rows) - 1
    assert next(r for r in rows if r["label"] == busi.label)["status"] == "refused"
    assert busi.path.is_file() and busi.path not in routes.values()
