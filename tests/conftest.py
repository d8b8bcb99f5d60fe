"""Shared fixtures: the tiny SAM, a local HTTP server with switchable faults, an isolated course cache,
the stand-in download mirror, and notebooks run in smoke mode. The plain stand-ins behind them: tests/fakes.py.
"""

from __future__ import annotations

import copy
import hashlib
import http.server
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from fakes import load_tiny_predictor, load_tiny_sam

FAULTS = (None, "404", "500", "truncate", "slow")


@pytest.fixture
def tiny_sam():
    """A fresh tiny random SAM on the CPU (MeaninglessModelWarning silenced): tests may train or change it."""
    return load_tiny_sam()


@pytest.fixture
def tiny_predictor():
    """A fresh predictor around the tiny random SAM; its ``encoder_calls`` start at 0."""
    return load_tiny_predictor()


@dataclass
class LocalServer:
    """A threaded HTTP server on 127.0.0.1 serving the files under ``root``.

    Set ``fault`` to make every request fail: ``"404"``, ``"500"``, ``"truncate"`` (announces the full
    Content-Length, sends half the body and closes the connection) or ``"slow"`` (waits ``delay``
    seconds before answering). ``hits`` counts GET requests per URL path (query string dropped).
    """

    root: Path
    port: int = 0
    fault: str | None = None
    delay: float = 2.0
    hits: Counter = field(default_factory=Counter)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, name: str, query: str = "") -> str:
        return f"{self.base_url}/{name.lstrip('/')}" + (f"?{query}" if query else "")

    def add_file(self, name: str, data: bytes) -> str:
        """Serve ``data`` at ``/name``; return the URL."""
        path = self.root / name.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return self.url(name)

    def set_fault(self, fault: str | None) -> None:
        if fault not in FAULTS:
            raise ValueError(f"fault must be one of {FAULTS}")
        self.fault = fault


def _handler(server: LocalServer):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = unquote(urlsplit(self.path).path)
            server.hits[path] += 1
            fault = server.fault
            if fault == "slow":
                time.sleep(server.delay)
            if fault in ("404", "500"):
                self.send_error(int(fault))
                return
            file = (server.root / path.lstrip("/")).resolve()
            if not file.is_file() or server.root.resolve() not in file.parents:
                self.send_error(404)
                return
            data = file.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if fault == "truncate":
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(data)

    return Handler


@pytest.fixture
def http_server(tmp_path_factory):
    """A :class:`LocalServer` on a free port; shut down after the test, whatever happened."""
    state = LocalServer(root=tmp_path_factory.mktemp("served"))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def course_cache(tmp_path, monkeypatch) -> Path:
    """Point the course's cache at a fresh folder; network allowed, no mirror set."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("SAMCOURSE_CACHE_DIR", str(cache))
    monkeypatch.delenv("SAMCOURSE_OFFLINE", raising=False)
    monkeypatch.delenv("SAMCOURSE_MIRROR", raising=False)
    return cache


def _files_under(folder: Path) -> list[str]:
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def list_files():
    """``list_files(folder)``: every file under ``folder`` (hidden and temporary ones included), relative."""
    return _files_under


@pytest.fixture
def mirror(http_server, course_cache, monkeypatch):
    """Serve synthetic files at the real URLs' paths through SAMCOURSE_MIRROR, with patched MD5s."""
    from utils import datasets

    monkeypatch.setenv("SAMCOURSE_MIRROR", http_server.base_url)
    msb_table = copy.deepcopy(datasets._medsegbench_table())
    mnist_info = copy.deepcopy(datasets._medmnist_info())
    monkeypatch.setattr(datasets, "_medsegbench_table", lambda: msb_table)
    monkeypatch.setattr(datasets, "_medmnist_info", lambda: mnist_info)

    class Mirror:
        server = http_server
        cache = course_cache

        def medsegbench(self, flag: str, size: int, data: bytes, md5: str | None = None) -> str:
            entry = msb_table[flag]["files"][size]
            entry["md5"] = md5 or hashlib.md5(data).hexdigest()
            path = urlsplit(entry["url"]).path
            http_server.add_file(path, data)
            return path

        def checkpoint(self, name: str, data: bytes) -> str:
            """Serve ``data`` as registry model ``name``'s checkpoint, its sha256 and size registered."""
            from utils import models

            spec = models.REGISTRY[name]
            patched = {**spec.__dict__, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            monkeypatch.setitem(models.REGISTRY, name, models.ModelSpec(**patched))
            http_server.add_file(urlsplit(spec.url).path, data)
            return urlsplit(spec.url).path

        def medmnist(self, flag: str, size: int, data: bytes, md5: str | None = None) -> str:
            suffix = "" if size == 28 else f"_{size}"
            mnist_info[flag][f"MD5{suffix}"] = md5 or hashlib.md5(data).hexdigest()
            path = urlsplit(mnist_info[flag][f"url{suffix}"]).path
            http_server.add_file(path, data)
            return path

    return Mirror()


# --------------------------------------------------------------------------------------------------
# Notebooks in smoke mode: each runs once per test session; tests of its numbers share the run.
# --------------------------------------------------------------------------------------------------

_SMOKE_RUNS: dict = {}


def _run_smoke(stem: str):
    """Execute ``notebooks/<stem>.ipynb`` in smoke mode once per session; return the harness record."""
    from utils.machine import output_dir
    from utils.tools import harness

    if stem not in _SMOKE_RUNS:
        path = next((p for p in harness.find_notebooks() if p.stem == stem), None)
        if path is None:
            raise FileNotFoundError(f"notebooks/{stem}.ipynb does not exist")
        # SOLUTIONS=True: every exercise is answered with its reference solution, and must pass
        _SMOKE_RUNS[stem] = harness.run_notebook(
            path, mode="smoke", out_root=output_dir("smoke"), parameters={"SOLUTIONS": True}
        )
    return _SMOKE_RUNS[stem]


@pytest.fixture(scope="session")
def smoke_run():
    """``smoke_run("03_zero_shot_medical")`` → the harness record of that notebook's smoke run (once a session)."""
    return _run_smoke


@pytest.fixture(scope="session")
def smoke_results():
    """``smoke_results("03_zero_shot_medical")`` → that notebook's results.json (after a smoke run)."""
    import json

    from utils.machine import output_dir

    def read(stem: str) -> dict:
        run = _run_smoke(stem)
        assert run.status == "ok", f"{stem} failed in smoke mode: {run.error}"
        return json.loads((output_dir("smoke") / stem / "results.json").read_text())

    return read
