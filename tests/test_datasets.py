"""utils.datasets: offline scans (Colin27/AAL, MNI152) and the MedSegBench / MedMNIST downloaders.

Downloads are tested against a local HTTP server (tests/conftest.py) reached through
SAMCOURSE_MIRROR, serving small synthetic npz files with the real key layout; the tables' MD5s are
patched to the synthetic files' MD5s.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from utils import datasets
from utils.datasets import (
    Case,
    colin27_cases,
    colin27_volume,
    medmnist_images,
    medmnist_info,
    medsegbench,
    medsegbench_flags,
    medsegbench_info,
    medsegbench_path,
    mni152_cases,
    mni152_volume,
    offline_cases,
)
from utils.download import ChecksumError, DownloadError, OfflineError

from fakes import medsegbench_npz, npz_bytes, synthetic_segmentation  # the mirror fixture: tests/conftest.py

MRICRON = Path("/usr/share/mricron/templates")
needs_mricron = pytest.mark.skipif(
    not (MRICRON / "aal.nii.gz").is_file(), reason="Debian's mricron-data is not installed"
)


# --------------------------------------------------------------------------------------------------
# MedSegBench
# --------------------------------------------------------------------------------------------------


def test_medsegbench_table_is_complete_and_clean():
    flags = medsegbench_flags()
    assert len(flags) == 33 and "busi" in flags and "pandental" in flags
    assert "bkai-igh" not in flags and "abdomenus" not in flags
    for flag in flags:
        info = medsegbench_info(flag)
        assert sorted(info["files"]) == [128, 256, 512]
        for size, file in info["files"].items():
            assert re.fullmatch(r"[0-9a-f]{32}", file["md5"]), (flag, size, file["md5"])
            assert file["url"].startswith("https://zenodo.org/records/") and f"{flag}_{size}.npz" in file["url"]
        assert info["task"] in ("binary", "multi-class") and info["license"] and info["reference"]
        assert info["modality"] and info["n_channels"] in (1, 3) and min(info["n_samples"].values()) > 0
        if info["task"] == "multi-class":
            assert info["pixel_labels"]["0"] and len(info["pixel_labels"]) >= 3
    assert medsegbench_info("busi")["license"] == "CC0: Public Domain"
    assert medsegbench_info("busi")["n_samples"] == {"train": 452, "val": 64, "test": 131}
    assert medsegbench_info("idrib")["categories"]["C4"] == "Optic Disc"
    assert medsegbench_info("busi")["files"][256]["md5"] == "198aea70968b71adf593b32c41a6e995"


REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "medsegbench_table.tsv"


@pytest.mark.skipif(not REFERENCE.is_file(), reason="the course's shared reference table is not present")
def test_medsegbench_table_matches_the_reference_table():
    with open(REFERENCE, newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream, delimiter="\t"))
    checked = 0
    for row in rows:
        if row["flag"] in ("bkai-igh", "abdomenus"):
            continue
        info = medsegbench_info(row["flag"])
        file = info["files"][int(row["size"])]
        assert file["url"] == row["url"] and file["md5"] == row["md5(repr)"].strip("'")
        assert info["license"] == row["license"].strip() and info["task"] == row["task"]
        assert info["n_samples"]["test"] == int(row["n_test"])
        checked += 1
    assert checked == 99


def test_medsegbench_gray_binary_cases(mirror):
    data, arrays = medsegbench_npz(empty=(1,))
    path = mirror.medsegbench("busi", 256, data)
    cases = medsegbench("busi", split="test", size=256, progressbar=False)
    assert [c.meta["index"] for c in cases] == [0, 2, 3]  # index 1 has an empty mask: skipped
    for case in cases:
        i = case.meta["index"]
        assert isinstance(case, Case) and case.name == f"busi_test_{i:04d}"
        assert case.image.shape == (32, 40, 3) and case.image.dtype == np.uint8
        assert np.array_equal(case.image[..., 0], arrays["test_images"][i])
        assert np.array_equal(case.image[..., 2], arrays["test_images"][i])
        assert np.array_equal(case.mask, arrays["test_label"][i] > 0) and case.mask.any()
        assert case.license == "CC0: Public Domain"
        assert "MedSegBench busi" in case.source and "13358372" in case.source and "10.1016/j.dib" in case.source
        assert case.modality == "ultrasound" and case.spacing == (1.0, 1.0)
        assert case.meta["spacing_known"] is False and case.meta["n_skipped_empty"] == 1
    assert (mirror.cache / "medsegbench" / "busi_256.npz").is_file()
    assert mirror.server.hits[path] == 1
    medsegbench("busi", split="train", size=256, progressbar=False)  # from the cache
    assert mirror.server.hits[path] == 1


def test_medsegbench_rgb_images_and_0_255_labels(mirror):
    data, arrays = medsegbench_npz(rgb=True, fg=255)
    mirror.medsegbench("kvasir", 128, data)
    cases = medsegbench("kvasir", split="val", size=128, progressbar=False)
    assert len(cases) == 3
    for case in cases:
        i = case.meta["index"]
        assert np.array_equal(case.image, arrays["val_images"][i])
        assert np.array_equal(case.mask, arrays["val_label"][i] == 255)
    assert cases[0].modality == "endoscopy" and "commercial" in cases[0].license


def test_medsegbench_n_and_seed_are_reproducible_and_skip_empty_masks(mirror):
    data, _ = medsegbench_npz(sizes=(3, 3, 20), empty=(0, 5, 6))
    mirror.medsegbench("pandental", 256, data)
    first = [c.name for c in medsegbench("pandental", n=5, seed=3, progressbar=False)]
    again = [c.name for c in medsegbench("pandental", n=5, seed=3, progressbar=False)]
    more = [c.name for c in medsegbench("pandental", n=8, seed=3, progressbar=False)]
    other = [c.name for c in medsegbench("pandental", n=5, seed=4, progressbar=False)]
    assert first == again and len(first) == 5 and first == sorted(first)
    assert set(first) <= set(more) and first != other
    indices = {int(name.rsplit("_", 1)[1]) for name in first + more + other}
    assert indices.isdisjoint({0, 5, 6})
    with pytest.warns(UserWarning, match="only 17 non-empty"):
        assert len(medsegbench("pandental", n=50, progressbar=False)) == 17


def test_medsegbench_multiclass_label_choice(mirror):
    images, _ = synthetic_segmentation(4)
    labels = np.zeros((4, 32, 40), dtype=np.uint8)
    labels[:, 2:10, 2:10] = 1  # pubic symphysis
    labels[:3, 15:30, 15:35] = 2  # fetal head (missing in the last image)
    data = npz_bytes(test_images=images, test_label=labels)
    mirror.medsegbench("fhpsaop", 256, data)
    anything = medsegbench("fhpsaop", progressbar=False)
    assert len(anything) == 4 and np.array_equal(anything[3].mask, labels[3] > 0)
    head = medsegbench("fhpsaop", label="fetal head", progressbar=False)
    assert len(head) == 3 and all(np.array_equal(c.mask, labels[c.meta["index"]] == 2) for c in head)
    assert head[0].meta["label"] == "2 (fetal head)"
    assert [c.name for c in medsegbench("fhpsaop", label=2, progressbar=False)] == [c.name for c in head]
    for bad in (0, 7, "liver", True):
        with pytest.raises(ValueError, match="pubic symphysis"):
            medsegbench("fhpsaop", label=bad, progressbar=False)
    with pytest.raises(ValueError, match="binary set"):
        medsegbench("busi", label=1, progressbar=False)


def test_medsegbench_category_arrays(mirror):
    images, labels = synthetic_segmentation(5)
    data = npz_bytes(test_images=images, test_label=labels, test_label_C4=labels[::-1].copy())
    mirror.medsegbench("idrib", 256, data)
    cases = medsegbench("idrib", category="C4", progressbar=False)
    assert [c.name for c in cases][:2] == ["idrib_C4_test_0000", "idrib_C4_test_0001"]
    assert np.array_equal(cases[0].mask, labels[4] > 0) and np.array_equal(cases[0].image[..., 0], images[0])
    with pytest.raises(ValueError, match="C1, C2, C3, C4"):
        medsegbench("idrib", category="C9", progressbar=False)


def test_medsegbench_rejects_a_file_with_the_wrong_layout(mirror):
    images, labels = synthetic_segmentation(3)
    mirror.medsegbench("drive", 128, npz_bytes(test_images=images, test_labels=labels))
    with pytest.raises(ValueError, match="test_label"):
        medsegbench("drive", size=128, progressbar=False)
    mirror.medsegbench("chasedb1", 128, npz_bytes(test_images=images, test_label=labels[:, :20]))
    with pytest.raises(ValueError, match="same N, H, W"):
        medsegbench("chasedb1", size=128, progressbar=False)


def test_medsegbench_wrong_md5_is_rejected_and_not_cached(mirror, list_files):
    data, _ = medsegbench_npz()
    mirror.medsegbench("busi", 256, data, md5="0" * 32)
    with pytest.raises(ChecksumError):
        medsegbench("busi", progressbar=False)
    assert list_files(mirror.cache) == []


def test_medsegbench_truncated_download_is_rejected_and_nothing_left(mirror, list_files):
    data, _ = medsegbench_npz(sizes=(30, 30, 30))
    mirror.medsegbench("busi", 256, data)
    mirror.server.set_fault("truncate")
    with pytest.raises((DownloadError, ChecksumError)):
        medsegbench("busi", progressbar=False)
    assert list_files(mirror.cache) == []


def test_medsegbench_offline_uses_the_cache_or_says_where_to_put_the_file(mirror, monkeypatch):
    data, _ = medsegbench_npz()
    mirror.medsegbench("busi", 256, data)
    medsegbench("busi", progressbar=False)
    monkeypatch.setenv("SAMCOURSE_OFFLINE", "1")
    assert len(medsegbench("busi", progressbar=False)) == 4
    with pytest.raises(OfflineError) as info:
        medsegbench("busi", size=128, progressbar=False)
    assert str(medsegbench_path("busi", 128)) in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"flag": "nope"}, "busi"),
        ({"flag": "bkai-igh"}, "trailing space"),
        ({"flag": "abdomenus"}, "trailing space"),
        ({"flag": "busi", "size": 300}, "128, 256, 512"),
        ({"flag": "busi", "split": "validation"}, "train, val, test"),
        ({"flag": "busi", "n": 0}, "n must be a whole number >= 1"),
        ({"flag": "busi", "category": "C3"}, "C1, C2"),
    ],
)
def test_medsegbench_bad_arguments_raise_before_any_download(http_server, course_cache, monkeypatch, kwargs, match):
    monkeypatch.setenv("SAMCOURSE_MIRROR", http_server.base_url)
    with pytest.raises(ValueError, match=match):
        medsegbench(progressbar=False, **kwargs)
    assert sum(http_server.hits.values()) == 0


# --------------------------------------------------------------------------------------------------
# MedMNIST
# --------------------------------------------------------------------------------------------------


def test_medmnist_info_comes_from_the_package():
    flags = datasets.medmnist_flags()
    assert len(flags) == 12 and "organmnist3d" not in flags
    for flag in flags:
        for size in datasets.MEDMNIST_SIZES:
            info = medmnist_info(flag, size)
            assert re.fullmatch(r"[0-9a-f]{32}", info["md5"]) and info["url"].startswith("https://zenodo.org/")
            assert info["license"] == ("CC BY-NC 4.0" if flag == "dermamnist" else "CC BY 4.0")
    info = medmnist_info("pneumoniamnist", 28)
    assert info["filename"] == "pneumoniamnist.npz" and info["label_names"] == {0: "normal", 1: "pneumonia"}
    assert medmnist_info("pathmnist", 224)["md5"] == "2c51a510bcdc9cf8ddb2af93af1eadec"
    assert "MedMNIST" in info["source"] and "10519652" in info["source"]


def test_medmnist_gray_images_labels_and_info(mirror):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(10, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 2, size=(10, 1), dtype=np.uint8)
    path = mirror.medmnist("pneumoniamnist", 28, npz_bytes(test_images=images, test_labels=labels))
    out, y, info = medmnist_images("pneumoniamnist", size=28, n=4, seed=1, progressbar=False)
    idx = info["indices"]
    assert out.shape == (4, 28, 28, 3) and out.dtype == np.uint8 and y.shape == (4,) and y.dtype == np.int64
    assert list(idx) == sorted(idx) and len(set(idx.tolist())) == 4
    assert np.array_equal(out[..., 1], images[idx]) and np.array_equal(y, labels[idx, 0])
    assert info["license"] == "CC BY 4.0" and info["split"] == "test" and info["label_names"][1] == "pneumonia"
    again = medmnist_images("pneumoniamnist", size=28, n=4, seed=1, progressbar=False)
    assert np.array_equal(again[2]["indices"], idx) and mirror.server.hits[path] == 1
    assert (mirror.cache / "medmnist" / "pneumoniamnist.npz").is_file()
    everything = medmnist_images("pneumoniamnist", size=28, progressbar=False)
    assert everything[0].shape == (10, 28, 28, 3)


def test_medmnist_rgb_and_multilabel(mirror):
    rgb = np.random.default_rng(1).integers(0, 256, size=(5, 64, 64, 3), dtype=np.uint8)
    mirror.medmnist("dermamnist", 64, npz_bytes(val_images=rgb, val_labels=np.arange(5, dtype=np.uint8)[:, None]))
    out, y, info = medmnist_images("dermamnist", split="val", size=64, progressbar=False)
    assert np.array_equal(out, rgb) and y.tolist() == [0, 1, 2, 3, 4] and info["license"] == "CC BY-NC 4.0"
    multi = np.random.default_rng(2).integers(0, 2, size=(6, 14), dtype=np.uint8)
    gray = np.zeros((6, 28, 28), dtype=np.uint8)
    mirror.medmnist("chestmnist", 28, npz_bytes(test_images=gray, test_labels=multi))
    _, y, info = medmnist_images("chestmnist", size=28, progressbar=False)
    assert y.shape == (6, 14) and np.array_equal(y, multi) and len(info["label_names"]) == 14


def test_medmnist_wrong_md5_rejected_and_bad_arguments(mirror, list_files):
    images = np.zeros((3, 28, 28), dtype=np.uint8)
    mirror.medmnist("breastmnist", 28, npz_bytes(test_images=images, test_labels=np.zeros((3, 1))), md5="f" * 32)
    with pytest.raises(ChecksumError):
        medmnist_images("breastmnist", size=28, progressbar=False)
    assert list_files(mirror.cache) == []
    for kwargs, match in [
        ({"flag": "nope"}, "pathmnist"),
        ({"flag": "organmnist3d"}, "pathmnist"),
        ({"flag": "pathmnist", "size": 32}, "28, 64, 128, 224"),
        ({"flag": "pathmnist", "split": "all"}, "train, val, test"),
    ]:
        with pytest.raises(ValueError, match=match):
            medmnist_images(progressbar=False, **kwargs)
    assert sum(mirror.server.hits.values()) == 1


# --------------------------------------------------------------------------------------------------
# Offline scans
# --------------------------------------------------------------------------------------------------


def _aal() -> np.ndarray:
    import nibabel as nib

    return np.asarray(nib.load(str(MRICRON / "aal.nii.gz")).dataobj)


@needs_mricron
def test_colin27_cases_have_masks_spacing_licence_and_expected_slices():
    cases = colin27_cases()
    assert len(cases) == 15 and len({c.name for c in cases}) == 15
    aal = _aal()
    for case in cases:
        assert case.image.shape == (217, 181, 3) and case.image.dtype == np.uint8
        assert case.mask.any() and case.spacing == (1.0, 1.0) and case.modality == "mri"
        assert "GPL" in case.license and "BSD-3-clause" in case.license and "Colin27" in case.source
        assert case.meta["axis"] == "axial" and case.meta["volume"].startswith("Colin27")
    by_structure = {}
    for case in cases:
        by_structure.setdefault(case.meta["structure"], []).append(case)
    for structure, value in [
        ("thalamus-left", 77),
        ("caudate-left", 71),
        ("putamen-left", 73),
        ("hippocampus-left", 37),
    ]:
        present = np.flatnonzero((aal == value).any(axis=(0, 1)))
        low, high = np.percentile(present, [25, 75])
        slices = [c.meta["slice"] for c in by_structure[structure]]
        assert len(slices) == 3 and all(low - 1 <= k <= high + 1 for k in slices), (structure, slices)
        for case in by_structure[structure]:
            k = case.meta["slice"]
            # Independent display transform: anterior up, patient's left on the image's right.
            assert np.array_equal(case.mask, (aal[::-1, ::-1, k] == value).T)
            assert f"AAL {value}" in case.meta["label"]
            assert case.mask.sum() >= 100
    thalamus, caudate = by_structure["thalamus-left"][1], by_structure["caudate-left"][1]
    assert ndimage.center_of_mass(thalamus.mask)[1] > thalamus.shape[1] / 2  # left → image right
    assert ndimage.center_of_mass(caudate.mask)[0] < ndimage.center_of_mass(thalamus.mask)[0]  # anterior is up
    brain = by_structure["brain"]
    assert all(c.mask.sum() > 10_000 and c.meta["hemisphere"] is None for c in brain)


@needs_mricron
def test_colin27_percentiles_pick_disjoint_slabs():
    lower = datasets.colin27_cases(["caudate"], n_slices=3, percentiles=(5, 45))
    upper = datasets.colin27_cases(["caudate"], n_slices=3, percentiles=(60, 95))
    assert max(c.meta["slice"] for c in lower) < min(c.meta["slice"] for c in upper)
    assert all(c.mask.any() for c in lower + upper)
    with pytest.raises(ValueError, match="two numbers"):
        datasets.colin27_cases(["caudate"], percentiles=(5,))


@needs_mricron
def test_colin27_volume_matches_the_cases_and_orientation():
    volume, mask, spacing = colin27_volume("thalamus", "left", axis="axial")
    assert volume.shape == mask.shape == (181, 217, 181) and volume.dtype == np.uint8 and mask.dtype == bool
    assert spacing == (1.0, 1.0, 1.0)
    case = colin27_cases(("thalamus",), n_slices=1)[0]
    k = case.meta["slice"]
    assert np.array_equal(volume[k], case.image[..., 0]) and np.array_equal(mask[k], case.mask)
    right = colin27_volume("thalamus", "right")[1]
    both = colin27_volume("thalamus", "both")[1]
    assert both.sum() == mask.sum() + right.sum() and not (mask & right).any()
    assert ndimage.center_of_mass(right)[2] < volume.shape[2] / 2 < ndimage.center_of_mass(mask)[2]
    coronal_hippo = colin27_volume("hippocampus", "left", axis="coronal")[1]
    coronal_thal = colin27_volume("thalamus", "left", axis="coronal")[1]
    assert ndimage.center_of_mass(coronal_hippo)[1] > ndimage.center_of_mass(coronal_thal)[1]  # inferior is down
    sagittal, sagittal_mask, _ = colin27_volume("brain", axis="sagittal")
    assert sagittal.shape == (181, 181, 217) and sagittal_mask.any()
    # Cases and volumes are copies: editing them does not touch the cached scan.
    case.mask[:] = False
    volume[:] = 0
    assert colin27_cases(("thalamus",), n_slices=1)[0].mask.any() and colin27_volume()[0].any()


@needs_mricron
def test_colin27_brain_mask_is_the_cleaned_skull_strip():
    import nibabel as nib

    bet = np.asarray(nib.load(str(MRICRON / "ch2bet.nii.gz")).dataobj) > 0
    brain = colin27_volume("brain")[1]
    assert brain.sum() <= bet.sum() and brain.sum() > 0.97 * bet.sum()
    assert np.array_equal(brain, (brain & bet[::-1, ::-1, :].transpose(2, 1, 0)))
    assert ndimage.label(brain)[1] == 1


def test_colin27_missing_package_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("SAMCOURSE_MRICRON_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="apt-get install -y mricron-data"):
        colin27_cases()
    with pytest.raises(FileNotFoundError, match="SAMCOURSE_MRICRON_DIR"):
        colin27_volume()


@pytest.mark.parametrize(
    "kwargs",
    [{"structures": ("amygdala",)}, {"hemisphere": "middle"}, {"axis": "oblique"}, {"n_slices": 0}],
)
def test_offline_loaders_validate_arguments(kwargs):
    with pytest.raises(ValueError):
        colin27_cases(**kwargs)


def test_mni152_cases_and_spacing_from_the_header():
    from nilearn.datasets import load_mni152_template

    assert tuple(float(z) for z in load_mni152_template(resolution=1).header.get_zooms()[:3]) == (1.0, 1.0, 1.0)
    cases = mni152_cases()
    assert len(cases) == 12
    for case in cases:
        assert case.image.shape == (233, 197, 3) and case.image.dtype == np.uint8 and case.mask.any()
        assert case.spacing == (1.0, 1.0) and "McConnell" in case.license and "ICBM152" in case.source
    with pytest.raises(ValueError, match="ventricles"):
        mni152_cases(("csf",))


def test_mni152_ventricles_are_plausible():
    volume, ventricles, spacing = mni152_volume("ventricles")
    brain = mni152_volume("brain")[1]
    assert spacing == (1.0, 1.0, 1.0) and volume.shape == (189, 233, 197)
    assert not (ventricles & ~brain).any()  # inside the brain mask
    labels, count = ndimage.label(ventricles)
    assert count == 2  # left and right lateral ventricle
    sizes_ml = np.bincount(labels.ravel())[1:] / 1000.0
    assert all(4.0 < s < 30.0 for s in sizes_ml), sizes_ml
    columns = [c[2] for c in ndimage.center_of_mass(ventricles, labels, [1, 2])]
    assert min(columns) < volume.shape[2] / 2 < max(columns)  # one on each side of the midline
    for case in mni152_cases(("ventricles",), n_slices=3):
        assert 100 <= case.mask.sum() <= 3000
        assert 1 <= ndimage.label(case.mask)[1] <= 4
        assert "derived" in case.meta["derivation"].lower() or "GM probability" in case.meta["derivation"]
        inside = case.image[..., 0][case.mask].mean()
        around = case.image[..., 0][ndimage.binary_dilation(case.mask, iterations=4) & ~case.mask].mean()
        assert inside < around  # CSF is dark on T1


@needs_mricron
def test_offline_cases_mix_both_sources():
    cases = offline_cases(n_per_structure=1)
    assert len(cases) == 7 and len({c.name for c in cases}) == 7
    assert sum(c.name.startswith("colin27") for c in cases) == 5
    assert {c.name.split("_")[1] for c in cases if c.name.startswith("mni152")} == {"brain", "ventricles"}


def test_availability_reports_installed_cached_and_missing(tmp_path, monkeypatch):
    from utils import datasets

    monkeypatch.setenv("SAMCOURSE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SAMCOURSE_MRICRON_DIR", str(tmp_path / "no-mricron"))
    busi = datasets.medsegbench_path("busi", 256)
    busi.parent.mkdir(parents=True)
    busi.write_bytes(b"x")
    table = datasets.availability(("busi", "drive"))
    status = table["status"].to_dict()
    assert status["Colin27 T1 + AAL atlas"] == "missing: apt-get install -y mricron-data"
    assert status["MedSegBench busi (ultrasound, 256 px)"] == "cached"
    assert status["MedSegBench drive (fundus, 256 px)"].startswith("downloads on first use")
    assert status["MNI152 2009a T1 + GM/WM/brain masks"] == "installed (nilearn)"
    assert "CC BY-NC" in table.loc["MedMNIST+ 224 px (classification, no masks)", "license"]
