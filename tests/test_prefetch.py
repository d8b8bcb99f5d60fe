"""utils.prefetch against a local server: fills the cache with verified files; failures leave nothing corrupt."""

import hashlib
from urllib.parse import urlsplit

import pytest
from test_datasets import medsegbench_npz, mirror, npz_bytes  # noqa: F401  (shared mirror fixture)

from utils import models, prefetch
from utils.download import file_hash


@pytest.fixture
def full_mode_mirror(mirror, monkeypatch):  # noqa: F811
    """Synthetic stand-ins for SAM ViT-B, two MedSegBench sets and one MedMNIST set at their real paths."""
    checkpoint = b"pretend checkpoint " * 1000
    spec = models.REGISTRY["sam_vit_b"]
    patched = models.ModelSpec(
        **{**spec.__dict__, "sha256": hashlib.sha256(checkpoint).hexdigest(), "size": len(checkpoint)}
    )
    monkeypatch.setitem(models.REGISTRY, "sam_vit_b", patched)
    mirror.server.add_file(urlsplit(spec.url).path, checkpoint)
    for flag in ("busi", "drive"):
        mirror.medsegbench(flag, 256, medsegbench_npz()[0])
    images = (pytest.importorskip("numpy").arange(2 * 28 * 28) % 255).astype("uint8").reshape(2, 28, 28)
    mirror.medmnist("breastmnist", 224, npz_bytes(test_images=images, test_labels=images[:, :1, 0]))
    return mirror


def _items():
    return prefetch.full_mode_items(medsegbench_sets=("busi", "drive"), medmnist_sets=("breastmnist",))


def test_full_mode_items_come_from_the_registries():
    names = [item.name for item in prefetch.full_mode_items()]
    assert names[0] == "model sam_vit_b"
    assert "MedSegBench busi 256px" in names and "MedMNIST+ breastmnist 224px" in names
    assert len(names) == 1 + 7 + len(prefetch.FULL_MODE_MEDMNIST)


def test_prefetch_fills_the_cache_with_verified_files(full_mode_mirror):
    rows = prefetch.prefetch(_items(), progress=False)
    assert [r["status"] for r in rows] == ["ok"] * 4, rows
    checkpoint = models.REGISTRY["sam_vit_b"].checkpoint_path()
    assert file_hash(checkpoint) == models.REGISTRY["sam_vit_b"].sha256
    hits = sum(full_mode_mirror.server.hits.values())
    again = prefetch.prefetch(_items(), progress=False)  # second run: everything is already cached
    assert [r["status"] for r in again] == ["ok"] * 4
    assert sum(full_mode_mirror.server.hits.values()) == hits


def test_interrupted_prefetch_leaves_nothing_corrupt_and_resumes(full_mode_mirror, list_files):
    full_mode_mirror.server.set_fault("truncate")
    rows = prefetch.prefetch(_items(), progress=False)
    assert all(r["status"] == "failed" for r in rows)
    assert list_files(full_mode_mirror.cache) == []  # no partial or temporary files anywhere
    full_mode_mirror.server.set_fault(None)
    rows = prefetch.prefetch(_items(), progress=False)
    assert all(r["status"] == "ok" for r in rows)
    table = prefetch.format_rows(rows)
    assert "MedSegBench drive 256px" in table and "ok" in table
