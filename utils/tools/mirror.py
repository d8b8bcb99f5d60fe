"""``make mirror``: serve the prefetched cache to a room, each file at its original URL's path.

With ``SAMCOURSE_MIRROR=http://host:port`` set, :func:`utils.download.fetch` asks ``host:port`` for
each file at the path of its original URL (``/segment_anything/sam_vit_b_01ec64.pth``,
``/records/13358372/files/busi_256.npz`` ...), so serving the cache folder as it lies on disk
(``models/``, ``medsegbench/`` ...) answers every request with 404. :class:`MirrorServer` serves a
fixed table ``{url_path: file}`` instead, built by :func:`full_mode_routes` from
:func:`utils.tools.prefetch.full_mode_files` (or any table, e.g. stand-in files for a rehearsal). A path
that is not in the table is 404: it never serves any other file. Students' machines still check
every file against the registry's hash.

``python -m utils.tools.mirror --port 8000 [--host 0.0.0.0] [--all-models]`` (``make mirror`` serves the
room on all interfaces, port 8000).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from utils.download import CHUNK_SIZE, verify_file
from utils.tools.prefetch import ALL_MODELS, FULL_MODE_MODELS, RemoteFile, full_mode_files

__all__ = ["MirrorServer", "cached_routes", "full_mode_routes", "main"]

DEFAULT_PORT = 8000


def _route_key(path: str) -> str:
    if not isinstance(path, str) or not path.startswith("/") or "?" in path or "#" in path:
        raise ValueError(f"A mirror route must be a URL path such as '/records/1/files/a.npz'; got {path!r}.")
    return unquote(path)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "SAMCourseMirror/1"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
        if self.server.mirror.log is not None:
            self.server.mirror.log(f"{self.address_string()} {format % args}")

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._answer(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        mirror = self.server.mirror
        path = unquote(urlsplit(self.path).path)
        mirror._count(path)
        file = mirror.routes.get(path)  # an exact match of the table: request paths never touch the disk
        try:
            stream = open(file, "rb") if file is not None else None
        except OSError:
            stream = None
        if stream is None:
            self.send_error(404, "Not in this mirror", f"{path} is not one of the files this mirror serves.")
            return
        with stream:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(os.fstat(stream.fileno()).st_size))
            self.end_headers()
            if body:
                try:
                    shutil.copyfileobj(stream, self.wfile, CHUNK_SIZE)
                except (BrokenPipeError, ConnectionResetError):  # the student's download was cancelled
                    self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # a room of students starting the same notebook at once

    def __init__(self, address: tuple[str, int], mirror: MirrorServer):
        self.mirror = mirror
        super().__init__(address, _Handler)


class MirrorServer:
    """A threaded HTTP server that serves exactly ``routes`` (``{url_path: local file}``), nothing else.

    ``url_path`` is the path of a file's original URL (no host, no query: ``/records/1/files/a.npz``);
    a request's query string is ignored. Any path not in ``routes`` answers 404, and so does a
    route whose file is gone. ``port=0`` picks a free port (see :attr:`url`); ``log`` receives one
    line per request (None: quiet); :attr:`hits` counts requests per path.

    Usage: ``with MirrorServer({"/a/b.npz": Path("b.npz")}) as server: os.environ["SAMCOURSE_MIRROR"] = server.url``.
    """

    def __init__(
        self,
        routes: Mapping[str, str | os.PathLike],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        log: Callable[[str], None] | None = None,
    ):
        self.routes: dict[str, Path] = {_route_key(key): Path(value) for key, value in routes.items()}
        self.log = log
        self.hits: Counter = Counter()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._serving = False
        self._httpd = _Server((host, port), self)

    @property
    def host(self) -> str:
        return self._httpd.server_address[0]

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """``http://host:port``: the value for ``SAMCOURSE_MIRROR`` (``0.0.0.0`` reads as ``127.0.0.1``)."""
        host = "127.0.0.1" if self.host == "0.0.0.0" else self.host
        return f"http://{host}:{self.port}"

    def _count(self, path: str) -> None:
        with self._lock:
            self.hits[path] += 1

    def start(self) -> MirrorServer:
        """Serve in a background thread; return self."""
        if not self._serving:
            self._serving = True
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="mirror", daemon=True
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until :meth:`stop` (from another thread) or Ctrl-C."""
        self._serving = True
        try:
            self._httpd.serve_forever(poll_interval=0.2)
        finally:
            self._serving = False

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._serving:
            self._httpd.shutdown()  # returns once the serving loop has ended
            self._serving = False
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> MirrorServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def full_mode_routes(files: Iterable[RemoteFile] | None = None) -> dict[str, Path]:
    """``{original URL path: cache path}`` for ``files`` (default: :func:`utils.tools.prefetch.full_mode_files`)."""
    routes: dict[str, Path] = {}
    for file in full_mode_files() if files is None else files:
        key = _route_key(urlsplit(file.url).path)
        if key in routes and routes[key] != Path(file.path):
            raise ValueError(f"Two files share the URL path {key}: {routes[key]} and {file.path}.")
        routes[key] = Path(file.path)
    return routes


def cached_routes(files: Iterable[RemoteFile] | None = None) -> tuple[dict[str, Path], list[dict]]:
    """The routes of the files that are in the cache and verify against their registered hash, and
    one report row per file (``label``, ``status``: ok / missing / refused, ``detail``)."""
    routes: dict[str, Path] = {}
    rows = []
    for file in full_mode_files() if files is None else files:
        status, detail = "ok", str(file.path)
        try:
            verify_file(file.path, file.known_hash, file.size)
        except FileNotFoundError:
            status, detail = "missing", f"not in the cache ({file.path}): run `make prefetch`"
        except ValueError as exc:  # a ChecksumError: a mirror must not hand out a file students would refuse
            status, detail = "refused", str(exc).splitlines()[0]
        else:
            routes.update(full_mode_routes([file]))
        rows.append({"label": file.label, "status": status, "detail": detail})
    return routes, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--all-models", action="store_true", help="also serve SAM ViT-L and ViT-H if prefetched")
    args = parser.parse_args(argv)
    routes, rows = cached_routes(full_mode_files(models=ALL_MODELS if args.all_models else FULL_MODE_MODELS))
    for row in rows:
        print(f"  {row['status']:<8} {row['label']:<32} {row['detail']}")
    if not routes:
        print("Nothing to serve: run `make prefetch` on this machine first.", file=sys.stderr)
        return 1
    try:
        server = MirrorServer(routes, args.host, args.port, log=lambda line: print(line, file=sys.stderr))
    except OSError as exc:
        print(
            f"Cannot listen on {args.host}:{args.port} ({exc.strerror}); pick another port with --port "
            "(make mirror PORT=8001) and use it in SAMCOURSE_MIRROR.",
            file=sys.stderr,
        )
        return 1
    address = "<this machine's IP address>" if args.host in ("0.0.0.0", "") else args.host
    print(
        f"\nServing {len(routes)} of {len(rows)} files on {args.host}:{server.port} (Ctrl-C stops). "
        f"On each student machine:\n  export SAMCOURSE_MIRROR=http://{address}:{server.port}",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
