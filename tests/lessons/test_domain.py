"""utils.lessons.domain: bundled natural photos, pooled embeddings, PCA, separation and the linear probe."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from utils import phantoms
from utils.lessons import domain


def _clusters(n_per=20, dim=12, gap=6.0, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, 1.0, (n_per, dim))
    b = rng.normal(0.0, 1.0, (n_per, dim))
    b[:, 0] += gap  # the groups differ along one direction only
    return np.vstack([a, b]), np.array(["a"] * n_per + ["b"] * n_per)


# ------------------------------------------------------------------------------------------ images


def test_natural_images_are_bundled_square_rgb_and_need_no_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("natural_images tried to use the network")

    monkeypatch.setattr("socket.create_connection", no_network)
    images, names = domain.natural_images(size=64)
    assert names == list(domain.NATURAL_PHOTOS)  # every listed photo ships with scikit-image
    assert images.shape == (len(names), 64, 64, 3) and images.dtype == np.uint8
    assert all(images[i].std() > 5 for i in range(len(names)))  # real pictures, not blanks


def test_natural_images_skip_a_missing_photo_and_reject_unknown_names(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="Unknown photo"):
        domain.natural_images(["eagle"])
    real = domain._skimage_data_dir()
    (tmp_path / "coffee.png").write_bytes((real / "coffee.png").read_bytes())
    monkeypatch.setattr(domain, "_skimage_data_dir", lambda: tmp_path)
    with pytest.warns(UserWarning, match="skipping 'astronaut'"):
        images, names = domain.natural_images(["astronaut", "coffee"], size=32)
    assert names == ["coffee"] and images.shape == (1, 32, 32, 3)
    with pytest.raises(ValueError, match="None of"), pytest.warns(UserWarning):
        domain.natural_images(["astronaut"])


def test_square_resize_crops_the_centre_and_accepts_grey():
    image = np.zeros((40, 100), np.uint8)
    image[:, 30:70] = 255  # the central 40 columns are white: the centre crop keeps only them
    out = domain.square_resize(image, 20)
    assert out.shape == (20, 20, 3) and out.dtype == np.uint8 and out.min() == 255
    same = np.arange(48, dtype=np.uint8).reshape(4, 12).repeat(3, 0)[:12, :12]
    assert np.array_equal(domain.square_resize(same, 12)[..., 0], same)
    with pytest.raises(ValueError, match="size must be"):
        domain.square_resize(image, 4)


def test_pixel_features_are_grey_levels_on_a_small_grid():
    images = np.zeros((3, 32, 32, 3), np.uint8)
    images[1] = 255
    features = domain.pixel_features(images, size=8)
    assert features.shape == (3, 64) and features.dtype == np.float32
    assert features[0].max() == 0 and np.allclose(features[1], 1.0)
    with pytest.raises(ValueError, match="images is empty"):
        domain.pixel_features([])


# ------------------------------------------------------------------------------------- embeddings


class _FakePredictor:
    """A predictor whose embedding is 1 where the image is and 100 in SAM's padding."""

    def __init__(self, img_size=64, grid=16):
        self.model = type("M", (), {"image_encoder": type("E", (), {"img_size": img_size})()})()
        self.grid, self.img_size, self.calls = grid, img_size, 0

    def set_image(self, image):
        self.calls += 1
        h, w = image.shape[:2]
        scale = self.img_size / max(h, w)
        self.input_size = (round(h * scale), round(w * scale))

    def get_image_embedding(self):
        embedding = torch.full((1, 2, self.grid, self.grid), 100.0)
        rows = -(-self.input_size[0] * self.grid // self.img_size)
        cols = -(-self.input_size[1] * self.grid // self.img_size)
        embedding[:, :, :rows, :cols] = 1.0
        return embedding


def test_pooled_embeddings_average_only_the_image_not_the_padding():
    fake = _FakePredictor()
    wide = np.zeros((32, 64, 3), np.uint8)  # resized to 32x64: the lower half of the grid is padding
    features = domain.pooled_embeddings(fake, [wide, np.zeros((64, 64, 3), np.uint8)], progress=False)
    assert features.shape == (2, 2) and np.allclose(features, 1.0)
    assert fake.calls == 2


def test_pooled_embeddings_with_a_real_sam_one_encoder_call_per_image(tiny_predictor):
    predictor = tiny_predictor
    images = np.random.default_rng(0).integers(0, 255, (3, 48, 48, 3), dtype=np.uint8)
    features = domain.pooled_embeddings(predictor, images, progress=False)
    assert predictor.encoder_calls == 3
    assert features.shape == (3, predictor.model.image_encoder.neck[0].out_channels)
    assert np.isfinite(features).all() and not np.allclose(features[0], features[1])
    again = domain.pooled_embeddings(predictor.model, images[:1], progress=False)  # a bare Sam is wrapped
    assert np.allclose(again[0], features[0], atol=1e-5)
    with pytest.raises(ValueError, match="no set_image"):
        domain.pooled_embeddings(object(), images)


# --------------------------------------------------------------------------- projection and probe


def test_project_2d_puts_the_group_difference_on_the_first_axis():
    features, groups = _clusters()
    coords, ratio = domain.project_2d(features)
    assert coords.shape == (40, 2) and 0 < ratio[1] <= ratio[0] and ratio.sum() <= 1 + 1e-9
    first = coords[:, 0]
    assert abs(first[groups == "a"].mean() - first[groups == "b"].mean()) > 3 * first[groups == "a"].std()
    with pytest.raises(ValueError, match="pca"):
        domain.project_2d(features, method="umap")
    with pytest.raises(ValueError, match="2-D array"):
        domain.project_2d(np.zeros(5))


def test_separation_is_high_for_clusters_and_low_for_shuffled_labels():
    features, groups = _clusters()
    assert domain.separation(features, groups) > 0.3
    shuffled = np.random.default_rng(1).permutation(groups)
    assert abs(domain.separation(features, shuffled)) < 0.1
    with pytest.raises(ValueError, match="groups"):
        domain.separation(features, ["a"] * 40)


def test_linear_probe_reads_separable_labels_and_not_random_ones():
    features, groups = _clusters(n_per=30, gap=8.0)
    result = domain.linear_probe(features, groups, seed=0)
    assert result["accuracy"] == 1.0 and result["n_classes"] == 2
    assert result["n_train"] + result["n_test"] == 60 and result["n_test"] == 18
    assert result["chance"] == pytest.approx(0.5)
    noise = np.random.default_rng(2).normal(size=(60, 40))
    scores = [domain.linear_probe(noise, groups, seed=s)["accuracy"] for s in range(5)]
    assert np.mean(scores) < 0.75  # nothing to read: near chance, not the separable 1.0


def test_linear_probe_rejects_bad_labels():
    features = np.zeros((6, 3))
    with pytest.raises(ValueError, match="at least 2 classes"):
        domain.linear_probe(features, [0] * 6)
    with pytest.raises(ValueError, match=">= 2 examples"):
        domain.linear_probe(features, [0, 0, 0, 0, 0, 1])
    with pytest.raises(ValueError, match="one label per row"):
        domain.linear_probe(features, [0, 1])
    with pytest.raises(ValueError, match="test_size"):
        domain.linear_probe(features, [0, 1] * 3, test_size=1.5)


def test_figures_draw():
    features, groups = _clusters(n_per=5)
    coords, _ = domain.project_2d(features)
    ax = domain.plot_projection(coords, groups, natural=["b"], title="t")
    assert len(ax.collections) == 2 and ax.get_title() == "t"
    fig = domain.gallery(np.zeros((3, 8, 8, 3), np.uint8), ["x", "y", "z"], ncols=2)
    assert len(fig.axes) == 4
    with pytest.raises(ValueError, match="one title per image"):
        domain.gallery(np.zeros((3, 8, 8, 3), np.uint8), ["x"])
    plt.close("all")


# ----------------------------------------------------------------------------------- medical sets


def test_medical_set_offline_stands_in_real_mri_and_phantoms_with_a_style_probe():
    medical = domain.medical_set("smoke", n_real=1, n_phantoms=2, styles=("ultrasound", "fundus"), seed=0, size=32)
    assert medical.images.shape == (5, 32, 32, 3) and medical.images.dtype == np.uint8
    assert (
        medical.groups[0].startswith("real MRI")
        and medical.groups[1:] == ["phantom ultrasound"] * 2 + ["phantom fundus"] * 2
    )
    (task, (index, labels)), *others = medical.tasks.items()
    assert not others and task == "phantom style (2 classes)"
    assert index.tolist() == [1, 2, 3, 4] and labels.tolist() == ["ultrasound"] * 2 + ["fundus"] * 2
    assert "stand in" in medical.note and len(medical.sources) == 5
    with pytest.raises(ValueError, match="mode"):
        domain.medical_set("auto", 1, 2)
    with pytest.raises(ValueError, match="n_phantoms must be an integer >= 2 in smoke mode"):
        domain.medical_set("smoke", 1, 1)  # the style probe needs two images per class
    with pytest.raises(ValueError, match="n_real"):
        domain.medical_set("offline", 0, 2)
    with pytest.raises(ValueError, match="styles must be some of"):
        domain.medical_set("smoke", 1, 2, styles=("ultrasound", "sonar"))
    with pytest.raises(TypeError):
        domain.medical_set("smoke", 1)  # every size is the caller's: no mode default


def test_medical_set_sizes_are_the_callers_in_every_mode():
    """make rehearse runs the full data at the smoke budget: the sizes follow the arguments, not the mode."""
    medical = domain.medical_set("smoke", n_real=1, n_phantoms=3, seed=0, size=16)
    assert medical.groups.count("phantom ct") == 3 and len(set(medical.groups)) == 1 + len(phantoms.STYLES)
    (task, (index, labels)), *_ = medical.tasks.items()
    assert task == f"phantom style ({len(phantoms.STYLES)} classes)" and len(labels) == 3 * len(phantoms.STYLES)


def test_medical_set_full_reads_medmnist_and_skips_a_set_that_fails(monkeypatch):
    from utils import datasets

    def fake_medmnist(flag, split="test", size=224, n=None, seed=0, **kwargs):
        if flag == "retinamnist":
            raise OSError("no network")
        rng = np.random.default_rng(seed)
        info = {"label_names": {0: "benign", 1: "malignant"}, "source": f"MedMNIST {flag}"}
        return rng.integers(0, 255, (n, 40, 40, 3), dtype=np.uint8), np.arange(n) % 2, info

    monkeypatch.setattr(datasets, "medmnist_images", fake_medmnist)
    with pytest.warns(UserWarning, match="retinamnist skipped"):
        medical = domain.medical_set("full", n_real=4, n_phantoms=2, seed=0, size=32)
    assert medical.groups[:8] == ["breastmnist (ultrasound)"] * 4 + ["pneumoniamnist (xray)"] * 4
    assert len(medical.images) == 8 + 2 * 8  # two phantoms of each of the eight styles
    assert list(medical.tasks) == ["breastmnist: benign / malignant", "pneumoniamnist: benign / malignant"]
    index, labels = medical.tasks["pneumoniamnist: benign / malignant"]
    assert index.tolist() == [4, 5, 6, 7] and labels.tolist() == [0, 1, 0, 1]


def test_medical_set_full_probes_only_classes_with_two_images(monkeypatch):
    """A class drawn once cannot be both fitted and tested: the probe task leaves it out (5 images, 3 grades)."""
    from utils import datasets

    def fake_medmnist(flag, split="test", size=224, n=None, seed=0, **kwargs):
        info = {"label_names": {0: "0", 1: "1", 2: "2", 3: "3"}, "source": f"MedMNIST {flag}"}
        labels = np.array([0, 2, 0, 3, 2]) if flag == "retinamnist" else np.array([0, 1, 2, 3, 0])
        return np.zeros((5, 40, 40, 3), np.uint8), labels, info

    monkeypatch.setattr(datasets, "medmnist_images", fake_medmnist)
    medical = domain.medical_set("full", n_real=5, n_phantoms=2, seed=0, size=32)
    assert list(medical.tasks) == ["retinamnist: 0 / 2"]  # the others have one class with two images
    index, labels = medical.tasks["retinamnist: 0 / 2"]
    assert index.tolist() == [10, 11, 12, 14] and labels.tolist() == [0, 2, 0, 2]
    domain.linear_probe(np.random.default_rng(0).normal(size=(4, 3)), labels, test_size=0.5)  # fits now
