"""utils.models.load_medsam: a user-supplied MedSAM ViT-B checkpoint, loaded safely with MedSAM's
min-max preprocessing. SAM ViT-B's modules are swapped for a tiny SAM so the test stays fast; the load
path (file check, weights_only, strict keys, MinMaxSam) is the real one."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch

from utils import models


@pytest.fixture
def tiny_architecture(monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", models.MeaninglessModelWarning)
        monkeypatch.setattr(models, "_medsam_architecture", lambda: models._build_tiny_sam(None, seed=1))
    return models._build_tiny_sam(None, seed=1)


def test_loads_a_state_dict_into_a_min_max_sam(tmp_path, tiny_architecture):
    path = tmp_path / "medsam_vit_b.pth"
    torch.save(tiny_architecture.state_dict(), path)
    sam = models.load_medsam(path, device="cpu")
    assert isinstance(sam, models.MinMaxSam) and not sam.training
    assert sam.pixel_mean.flatten().tolist() == [0.0, 0.0, 0.0]
    assert sam.pixel_std.flatten().tolist() == [255.0, 255.0, 255.0]
    for key, value in tiny_architecture.state_dict().items():
        assert torch.equal(sam.state_dict()[key], value), key
    # MedSAM's preprocessing: each image min-max stretched to [0, 1] (then padded with zeros)
    pixels = torch.full((1, 3, 256, 256), 40.0)
    pixels[..., :100, :] = 90.0
    out = sam.preprocess(pixels)
    assert out.min().item() == 0.0 and out.max().item() == 1.0
    predictor = models.CoursePredictor(sam, name="medsam_vit_b")
    predictor.set_image(np.zeros((32, 48, 3), np.uint8))
    masks, _, _ = predictor.predict(box=np.array([4, 4, 20, 20]), multimask_output=False)
    assert masks.shape == (1, 32, 48) and predictor.encoder_calls == 1


def test_accepts_a_checkpoint_wrapped_in_model(tmp_path, tiny_architecture):
    path = tmp_path / "wrapped.pth"
    torch.save({"model": tiny_architecture.state_dict()}, path)
    assert isinstance(models.load_medsam(str(path), device="cpu"), models.MinMaxSam)


def test_missing_file_says_where_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="medsam_vit_b.pth") as info:
        models.load_medsam(tmp_path / "nothing.pth")
    assert "MEDSAM_CHECKPOINT" in str(info.value)


def test_wrong_architecture_is_refused(tmp_path, tiny_architecture):
    state = tiny_architecture.state_dict()
    state.pop(next(iter(state)))
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match="SAM ViT-B's weights"):
        models.load_medsam(path, device="cpu")


class _Exploit:
    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickle_with_code_is_refused(tmp_path, tiny_architecture):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as stream:
        pickle.dump({"image_encoder.x": _Exploit()}, stream)
    with pytest.raises(ValueError, match="weights_only"):
        models.load_medsam(path, device="cpu")
