"""Verified downloads: cached, hash-checked, atomic, with a progress bar (built on pooch).

Rules every file the course fetches follows:

- A file is only ever read from its final path after its size and hash have been checked.
- A download goes to a temporary file in the same folder and is moved into place only after its
  hash matched (pooch does this); an interrupted or wrong download leaves nothing behind.
- A cached file whose hash is wrong is refused, never loaded and never silently replaced: the error
  says to delete it (``force=True`` re-downloads over it).
- With no network (or ``SAMCOURSE_OFFLINE=1``) a missing file raises :class:`OfflineError` at once,
  naming the URL and the exact path where a copy made elsewhere can be placed by hand.
- A file is hashed once, not on every load: after it verified, a stamp ``<file>.verified`` beside it
  records the hash with the file's size and mtime, and a later check that finds them unchanged
  skips re-reading the file (375 MB for SAM ViT-B). Any rewrite or replacement changes the mtime,
  so the file is hashed again and refused if it is wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from utils.machine import network_available, offline_forced, rehearsal_manifest

__all__ = [
    "ChecksumError",
    "DownloadError",
    "OfflineError",
    "fetch",
    "file_hash",
    "mirror_url",
    "stamp_path",
    "verify_file",
]

MIRROR_ENV = "SAMCOURSE_MIRROR"
STAMP_SUFFIX = ".verified"
# pooch streams in 1 KiB chunks by default: ~370,000 write+flush calls for SAM ViT-B. 1 MiB is 360.
CHUNK_SIZE = 1 << 20

_ALGORITHMS = ("sha256", "md5")


class OfflineError(FileNotFoundError):
    """A file is not cached and cannot be downloaded (no network or offline forced)."""


class ChecksumError(ValueError):
    """A file's size or hash does not match the registry: it is corrupted or was tampered with."""


class DownloadError(RuntimeError):
    """The server answered with an error or the transfer broke off; nothing was written."""


def _split_hash(known_hash: str) -> tuple[str, str]:
    if not isinstance(known_hash, str) or ":" not in known_hash:
        raise ValueError(f"known_hash must look like 'sha256:<hex>' or 'md5:<hex>', got {known_hash!r}.")
    algorithm, digest = known_hash.split(":", 1)
    algorithm, digest = algorithm.strip().lower(), digest.strip().lower()
    if algorithm not in _ALGORITHMS:
        raise ValueError(f"Unsupported hash algorithm {algorithm!r}; use one of {_ALGORITHMS}.")
    return algorithm, digest


def file_hash(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def stamp_path(path: str | os.PathLike) -> Path:
    """Where :func:`verify_file` records that ``path`` verified: ``<path>.verified`` beside it."""
    path = Path(path)
    return path.with_name(path.name + STAMP_SUFFIX)


def _stamp_matches(path: Path, algorithm: str, digest: str, stat: os.stat_result) -> bool:
    try:
        record = json.loads(stamp_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # missing, unreadable or not JSON: hash the file instead
        return False
    return isinstance(record, dict) and record == _stamp_record(algorithm, digest, stat)


def _stamp_record(algorithm: str, digest: str, stat: os.stat_result) -> dict:
    return {"algorithm": algorithm, "digest": digest, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _write_stamp(path: Path, record: dict) -> None:
    """Write the stamp atomically (temporary file + rename); a folder we cannot write just means no stamp."""
    target = stamp_path(path)
    temporary = None
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{target.name}.", suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(record, stream)
        os.chmod(temporary, 0o644)  # mkstemp makes it private; a shared cache's other users may read it
        os.replace(temporary, target)
    except OSError:  # e.g. a read-only cache: the next check hashes the file again, nothing worse
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)


def _drop_stamp(path: Path) -> None:
    try:
        stamp_path(path).unlink(missing_ok=True)
    except OSError:
        pass


def verify_file(path: str | os.PathLike, known_hash: str, size: int | None = None, *, stamp: bool = True) -> Path:
    """Raise :class:`ChecksumError` unless ``path`` has the expected size and hash; return the path.

    With ``stamp`` (the default) a file is hashed once: a successful check writes ``<path>.verified``
    (algorithm, digest, size, mtime_ns), and a later call whose expected hash, and the file's current
    size and mtime_ns, all match the stamp returns without reading the file. Anything else (another
    hash, a rewritten or replaced file, a broken stamp) hashes the file again. The stamp trusts the
    file's mtime: whoever can rewrite the cache and restore the mtime could also rewrite the stamp.
    """
    path = Path(path)
    algorithm, expected = _split_hash(known_hash)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist.")
    before = path.stat()
    if size is not None and before.st_size != size:
        _drop_stamp(path)
        raise ChecksumError(
            f"Refusing {path}: it is {before.st_size:,} bytes but should be {size:,} bytes "
            "(a truncated, corrupted or tampered file). Delete it and run again to download a fresh copy."
        )
    if stamp and _stamp_matches(path, algorithm, expected, before):
        return path
    actual = file_hash(path, algorithm)
    if actual != expected:
        _drop_stamp(path)
        raise ChecksumError(
            f"Refusing {path}: its {algorithm} is {actual} but should be {expected} "
            "(a corrupted or tampered file; it was not loaded). Delete it and run again to download a fresh copy."
        )
    after = path.stat()
    # Stamp only what was hashed: a file rewritten or replaced while it was being read gets no stamp.
    unchanged = (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    if stamp and unchanged:
        _write_stamp(path, _stamp_record(algorithm, expected, before))
    return path


def mirror_url(url: str) -> str:
    """``url`` with its scheme and host replaced by ``$SAMCOURSE_MIRROR`` (path and query kept), if set.

    A workshop serves the cache's files from one machine at the original servers' paths
    (``make mirror``, :mod:`utils.tools.mirror`); hashes are still checked against the registry.
    """
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if not mirror:
        return url
    base = urlsplit(mirror)
    if base.scheme not in ("http", "https") or not base.netloc:
        raise ValueError(f"{MIRROR_ENV} must look like 'http://host:port' or 'https://host/prefix'; got {mirror!r}.")
    parts = urlsplit(url)
    return urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + parts.path, parts.query, ""))


def _proxy_configured() -> bool:
    return any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"))


def _human(size: int | None) -> str:
    if size is None:
        return "size unknown"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"  # pragma: no cover


def fetch(
    url: str,
    path: str | os.PathLike,
    known_hash: str,
    *,
    size: int | None = None,
    force: bool = False,
    progressbar: bool = True,
    timeout: float = 60.0,
    stamp: bool = True,
) -> Path:
    """Return a verified local copy of ``url`` at ``path``, downloading it if needed.

    ``known_hash`` is ``"sha256:<hex>"`` or ``"md5:<hex>"``; ``size`` (bytes) is checked too when given.
    ``stamp``: see :func:`verify_file` (a cached file is hashed once, not on every call). In a
    rehearsal (:func:`utils.machine.rehearsal_manifest`) the stand-in's hash and size replace the
    registry's for the URLs the manifest names, and only for those.
    """
    import pooch
    import requests

    path = Path(path).expanduser()
    _split_hash(known_hash)  # validate the format before touching the network
    standin = (rehearsal_manifest() or {}).get(url)
    if standin is not None:
        known_hash, size = standin["hash"], standin.get("size")
    url = mirror_url(url)
    if path.exists() and not force:
        return verify_file(path, known_hash, size, stamp=stamp)

    manual = (
        f"Download {url} ({_human(size)}) on a machine with internet and place it at\n  {path}\n"
        "(or run `make prefetch` where there is network, then copy the cache folder)."
    )
    if offline_forced():
        raise OfflineError(f"{path.name} is not in the cache and SAMCOURSE_OFFLINE is set.\n{manual}")
    # A direct TCP probe fails fast without network; behind a proxy only requests itself can tell.
    if not _proxy_configured() and not network_available(url, timeout=3.0, cached=False):
        raise OfflineError(f"{path.name} is not in the cache and {url} cannot be reached (no network?).\n{manual}")

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.parent / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise PermissionError(
            f"Cannot write to the cache folder {path.parent} ({exc.strerror}). Set SAMCOURSE_CACHE_DIR to a "
            "writable folder, or fix the folder's permissions."
        ) from exc

    # With force, pooch downloads to a temporary file and replaces the old copy only once the new
    # one's hash matched, so a failed re-download keeps what was there.
    downloader = pooch.HTTPDownloader(progressbar=progressbar, chunk_size=CHUNK_SIZE, timeout=timeout)
    try:
        pooch.retrieve(url, known_hash=known_hash, fname=path.name, path=path.parent, downloader=downloader)
    except ValueError as exc:  # pooch's hash mismatch; its temporary file is already removed
        raise ChecksumError(
            f"The file downloaded from {url} does not match its registered hash, so it was discarded "
            f"(nothing was saved to {path}). The server may be serving a different file: report it.\n{exc}"
        ) from exc
    except requests.exceptions.RequestException as exc:
        raise DownloadError(
            f"Downloading {url} failed ({exc.__class__.__name__}: {exc}); nothing was saved to {path}. "
            f"Check the network and run again.\n{manual}"
        ) from exc
    return verify_file(path, known_hash, size, stamp=stamp)
