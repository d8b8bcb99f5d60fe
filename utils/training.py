"""Fine-tuning SAM: simulated prompts, Dice + cross-entropy, AMP, accumulation, held-out Dice, metering.

One loop serves every strategy of :mod:`utils.peft`::

    sam = peft.lora(load_sam("litemedsam"), rank=4)
    result = train(sam, train_cases, val_cases, steps=150, lr=1e-4, eval_every=25, seed=SEED)
    # or: train(load_sam("litemedsam"), train_cases, val_cases, strategy_name="lora", ...)
    result.history          # step, loss, val_dice (+ one val_<mode> column per evaluated mode)
    result.summary()        # the numbers for results.json

**What one step does** (MedSAM's recipe): draw ``batch_size`` training cases (a seeded shuffle,
epoch after epoch), simulate one prompt per case from its mask (:func:`utils.prompts.sample_prompt`: by
default a box whose sides move by up to ``box_jitter`` of its size; points or a mix on request), run SAM with
``multimask_output=False`` and compare the low-resolution logits, upsampled to ``loss_size``
(256: SAM's own low-res size), with the mask in the same padded input frame using soft Dice +
binary cross-entropy (:class:`DiceBCELoss`, equal to MONAI's ``DiceCELoss(sigmoid=True,
squared_pred=True)``). With
``accumulate > 1`` gradients of that many micro-batches are summed before the optimiser (AdamW)
steps, so one step sees ``batch_size * accumulate`` cases. Only the mask is supervised: the IoU
head (part of the mask decoder) and the prompt encoder's unused embeddings get no gradient.

**Three forward paths.** When no image-encoder parameter is trainable (``decoder_only``), each
training and validation image is embedded **once** up front (:func:`precompute_embeddings`,
through ``CoursePredictor.set_image``, i.e. SAM's own preprocessing) and steps run the prompt
encoder and mask decoder only. Otherwise every step runs the encoder with gradients on the same
preprocessing: ``ResizeLongestSide`` (``predictor.transform.apply_image``), ``sam.preprocess``
(normalise and pad; LiteMedSAM's min-max stretch), ``image_encoder``. ``checkpoint_encoder=True``
checkpoints the encoder's transformer blocks (:func:`encoder_checkpointing`): they recompute their
activations in the backward pass instead of storing them, so that SAM ViT-B at 1024 x 1024 should
train within a T4's 15 GiB (CPU measurements and a GPU estimate in :func:`train`). When the strategy
put its encoder parameters in the last K blocks only (``last_blocks=K``, :mod:`utils.peft`), the
encoder is cut there: the frozen head runs once per image (cached, :func:`cached_encoder_head`) and
each step runs only the last K blocks and the neck, forward and backward. Same gradients; on
LiteMedSAM with K = 1 a LoRA step took 0.32x the time of a whole-encoder step (same process,
alternated, on a loaded 2-core machine: 28 s vs 89 s; decoder-only 9 s).

**Held-out Dice** goes through :func:`utils.evaluate.evaluate` (the course's one evaluation path,
box prompts by default) every ``eval_every`` steps, before training and at the end.

**Modes.** Training puts the model in ``train()`` mode except BatchNorm layers (TinyViT's conv
stage), whose running statistics stay frozen: batches of 1-4 images are too small to estimate them.
Evaluation uses ``eval()`` and the model is left in ``eval()`` mode at the end.

**Metering.** ``step_time_s`` is the median wall time of an optimiser step (all its micro-batches,
evaluation excluded; CUDA is synchronised first). ``peak_mem_mb`` on CUDA is
``torch.cuda.max_memory_allocated`` during training: the most memory tensors occupied (weights,
activations, gradients, optimiser state), without the CUDA context and the allocator's cache. On
the CPU it is the largest resident set size (``psutil``) sampled after every forward and backward
pass: the whole process (Python, libraries, data, and memory kept from earlier work, since a
process rarely hands memory back). ``extra_mem_mb`` is the peak minus the same measure just before
the first step (tensors allocated on CUDA; RSS on the CPU): what training itself added, the number
to compare between strategies.

**Determinism.** ``seed`` seeds Python, NumPy and torch (``utils.machine.seed_everything``) and the
case/prompt sampler: the same seed, data and model give the same loss history on the CPU. On CUDA
some kernels are non-deterministic; expect the same curve up to small differences. ``amp=True`` uses
float16 autocast with gradient scaling on CUDA only (ignored on other devices).
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from utils import peft
from utils.checks import whole_number
from utils.images import to_rgb_uint8
from utils.machine import get_device, seed_everything
from utils.models import CachedPredictor, CoursePredictor
from utils.prompts import PROMPT_KINDS, sample_prompt

__all__ = [
    "DiceBCELoss",
    "TrainResult",
    "HeadCache",
    "cached_encoder_head",
    "encoder_blocks",
    "encoder_checkpointing",
    "evaluate_dice",
    "make_loss",
    "mask_target",
    "plot_learning_curves",
    "precompute_embeddings",
    "results_table",
    "SCHEDULES",
    "train",
]


def _constant(steps: int) -> Callable[[int], float]:
    return lambda step: 1.0


def _cosine(steps: int) -> Callable[[int], float]:
    # step t (0-based) trains with lr * (1 + cos(pi t / steps)) / 2: lr first, close to 0 last
    return lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, steps) / steps))


SCHEDULES: dict[str, Callable[[int], Callable[[int], float]]] = {"constant": _constant, "cosine": _cosine}
"""Learning-rate schedule name -> (steps -> multiplier of ``lr`` at each 0-based step)."""


class DiceBCELoss(nn.Module):
    """MedSAM's loss on logits: soft Dice (squared denominators) + binary cross-entropy, each weight 1.

    Per image ``1 - (2 sum(p t) + 1e-5) / (sum(p^2) + sum(t^2) + 1e-5)`` with ``p = sigmoid(logits)``,
    averaged over the batch, plus the mean ``BCEWithLogits`` over all pixels. It equals MONAI's
    ``DiceCELoss(sigmoid=True, squared_pred=True)`` for one channel (tested); written out here because
    importing MONAI takes longer than a whole smoke-mode training run.
    """

    def __init__(self, smooth: float = 1e-5) -> None:
        super().__init__()
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.shape != target.shape:
            raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} must have one shape.")
        probs = torch.sigmoid(logits).flatten(2)
        flat = target.flatten(2)
        overlap = (probs * flat).sum(-1)
        denominator = (probs * probs).sum(-1) + (flat * flat).sum(-1)
        dice_loss = 1.0 - (2.0 * overlap + self.smooth) / (denominator + self.smooth)
        return dice_loss.mean() + F.binary_cross_entropy_with_logits(logits, target)


def make_loss() -> nn.Module:
    """The training loss: :class:`DiceBCELoss` (= MONAI ``DiceCELoss(sigmoid=True, squared_pred=True)``)."""
    return DiceBCELoss()


# ------------------------------------------------------------------------------ embeddings & predictor


def precompute_embeddings(
    sam: nn.Module,
    cases: Sequence[Any],
    device: str | torch.device | None = None,
    progress: bool = True,
    predictor: CachedPredictor | None = None,
) -> list[torch.Tensor]:
    """Run the image encoder once per case; return one ``(1, C, h, w)`` embedding per case, on ``device``.

    Goes through ``CoursePredictor.set_image`` / ``get_image_embedding``, so the preprocessing is
    exactly the predictor's. ``device`` defaults to the model's. Pass a
    :class:`utils.models.CachedPredictor` to keep the embeddings for later ``predict`` calls too.
    """
    from tqdm.auto import tqdm

    cases = _check_cases(cases, "cases")
    if device is not None:
        sam.to(device if isinstance(device, torch.device) else get_device(device))
    predictor = predictor if predictor is not None else CachedPredictor(CoursePredictor(sam))
    sam.eval()
    embeddings = []
    for case in tqdm(cases, desc="embedding images", unit="image", disable=not progress):
        predictor.set_image(case.image)
        embeddings.append(predictor.get_image_embedding().clone())  # clone: a normal tensor, not an inference one
    return embeddings


def evaluate_dice(
    sam: nn.Module,
    cases: Sequence[Any],
    prompt: str = "box",
    seed: int = 0,
    predictor: CoursePredictor | None = None,
) -> float:
    """Mean Dice of ``sam`` on ``cases`` with prompt mode ``prompt`` (a :data:`utils.evaluate.MODES` name).

    Uses :func:`utils.evaluate.evaluate` (one ``set_image`` per case) with the model in eval mode.
    """
    cases = _check_cases(cases, "cases")
    (prompt,) = _check_eval_modes((prompt,))
    table = _evaluate(sam, cases, (prompt,), seed, predictor)
    return float(table["dice"].mean())


def _check_eval_modes(modes: Sequence[str]) -> tuple[str, ...]:
    from utils.evaluate import MODES

    modes = (modes,) if isinstance(modes, str) else tuple(modes)
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ValueError(f"Unknown evaluation mode(s) {unknown}; choose from {', '.join(MODES)} (e.g. 'box').")
    return modes


def _evaluate(
    sam: nn.Module, cases: Sequence[Any], modes: Sequence[str], seed: int, predictor: CoursePredictor | None
) -> pd.DataFrame:
    from utils.evaluate import evaluate

    was_training = sam.training
    sam.eval()
    try:
        predictor = predictor if predictor is not None else CoursePredictor(sam)
        # train() trains output 0 (multimask_output=False), so it is scored on output 0 before and after, for
        # every prompt: SAM's three single-point outputs were not trained here, LiteMedSAM's never were
        return evaluate(predictor, list(cases), modes=tuple(modes), seed=seed, progress=False, trained_multimask=False)
    finally:
        if was_training:
            _train_mode(sam)


# --------------------------------------------------------------------------------------- the samples


@dataclass
class _Sample:
    """One training case in the model's input frame."""

    mask: np.ndarray  # original (H, W) bool, for prompts
    image: torch.Tensor  # (3, h, w) uint8, resized with ResizeLongestSide (not yet padded)
    target: torch.Tensor  # (1, L, L) float {0, 1}: the mask in the padded input frame at loss_size
    original_size: tuple[int, int]


def _prepare(case: Any, predictor: CoursePredictor, loss_size: int, device: torch.device) -> _Sample:
    image = to_rgb_uint8(case.image)
    resized = predictor.transform.apply_image(image)  # the predictor's own resize
    side = predictor.model.image_encoder.img_size
    mask = torch.as_tensor(np.asarray(case.mask), dtype=torch.float32)[None, None]
    mask = F.interpolate(mask, size=resized.shape[:2], mode="bilinear", align_corners=False)
    mask = F.pad(mask, (0, side - resized.shape[1], 0, side - resized.shape[0]))  # sam.preprocess pads like this
    target = (F.interpolate(mask, size=(loss_size, loss_size), mode="area") > 0.5).float()[0]
    return _Sample(
        mask=np.asarray(case.mask, dtype=bool),
        image=torch.as_tensor(resized, device=device).permute(2, 0, 1).contiguous(),
        target=target.to(device),
        original_size=tuple(image.shape[:2]),
    )


def mask_target(case: Any, predictor: CoursePredictor, loss_size: int = 256) -> torch.Tensor:
    """``case.mask`` as the loss sees it, ``(1, 1, loss_size, loss_size)`` in {0, 1}: resized like the image by
    the predictor's transform, padded like ``sam.preprocess``, then scaled to ``loss_size`` (what :func:`train`
    compares the decoder's logits with)."""
    device = next(predictor.model.parameters()).device
    return _prepare(case, predictor, whole_number(loss_size, "loss_size", minimum=8), device).target[None]


def _prompt_tensors(prompt: dict[str, Any], predictor: CoursePredictor, sample: _Sample, device: torch.device):
    """(points, boxes) for ``sam.prompt_encoder``, mapped to the input frame as the predictor maps them."""
    points = boxes = None
    if prompt["point_coords"] is not None:
        coords = predictor.transform.apply_coords(np.asarray(prompt["point_coords"], float), sample.original_size)
        points = (
            torch.as_tensor(coords, dtype=torch.float32, device=device)[None],
            torch.as_tensor(prompt["point_labels"], dtype=torch.int64, device=device)[None],
        )
    if prompt["box"] is not None:
        box = predictor.transform.apply_boxes(np.asarray(prompt["box"], float)[None], sample.original_size)
        boxes = torch.as_tensor(box, dtype=torch.float32, device=device)
    return points, boxes


def _decode(sam: nn.Module, embedding: torch.Tensor, points, boxes) -> torch.Tensor:
    """Low-resolution mask logits ``(1, 1, 4h, 4w)`` for one image embedding ``(1, C, h, w)`` and one prompt."""
    sparse, dense = sam.prompt_encoder(points=points, boxes=boxes, masks=None)
    logits, _ = sam.mask_decoder(
        image_embeddings=embedding,
        image_pe=sam.prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=False,
    )
    return logits


def _forward(
    sam: nn.Module,
    samples: Sequence[_Sample],
    prompts: Sequence[dict[str, Any]],
    predictor: CoursePredictor,
    loss_size: int,
    embeddings: Sequence[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Logits ``(B, 1, loss_size, loss_size)`` for a batch; runs the encoder unless ``embeddings`` are given."""
    device = samples[0].target.device
    if embeddings is None:
        batch = torch.cat([sam.preprocess(s.image[None]) for s in samples])  # normalise + pad, as set_image
        embeddings = sam.image_encoder(batch).split(1)
    logits = []
    for sample, prompt, embedding in zip(samples, prompts, embeddings):
        # SAM's mask decoder pairs one image with all prompts, so images are decoded one at a time.
        logits.append(_decode(sam, embedding, *_prompt_tensors(prompt, predictor, sample, device)))
    logits = torch.cat(logits)
    if logits.shape[-1] != loss_size:
        logits = F.interpolate(logits, size=(loss_size, loss_size), mode="bilinear", align_corners=False)
    return logits


# ------------------------------------------------------------------------ activation checkpointing


def encoder_blocks(sam: nn.Module) -> list[nn.Module]:
    """The image encoder's transformer blocks (modules with an ``attn`` and an ``mlp``), adapted or not.

    SAM ViT: ``image_encoder.blocks``; LiteMedSAM's TinyViT: the blocks of ``layers[1:]`` (its
    convolutional first stage has none). Unlike :func:`utils.peft.transformer_blocks` it also finds
    blocks whose ``attn``, ``qkv`` or ``mlp`` an adapter, LoRA or SVD has wrapped.
    """
    encoder = peft.image_encoder(sam)
    blocks = [m for m in encoder.modules() if all(isinstance(getattr(m, a, None), nn.Module) for a in ("attn", "mlp"))]
    if not blocks:
        raise ValueError(f"Found no transformer blocks (modules with attn and mlp) in {type(encoder).__name__}.")
    return blocks


def _checkpointed(forward: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        if not torch.is_grad_enabled():  # evaluation: nothing is kept for a backward pass, nothing to save
            return forward(*args, **kwargs)
        # use_reentrant=False: gradients reach the block's parameters even when its input needs none (the
        # frozen patch embedding of LoRA/adapter/SVD), and autocast and RNG state are replayed on recompute.
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)

    return run


@contextlib.contextmanager
def encoder_checkpointing(sam: nn.Module, enabled: bool = True) -> Iterator[list[nn.Module]]:
    """Activation (gradient) checkpointing of every :func:`encoder_blocks` block while the context is open.

    With gradients enabled, each block keeps only its input during the forward pass and recomputes its
    activations during the backward pass: the same loss and gradients, for one extra encoder forward
    pass per step. Under ``torch.no_grad`` the blocks run as usual. Yields the blocks (none when
    ``enabled`` is false); their ``forward`` is restored on exit, also after an error.
    """
    blocks = encoder_blocks(sam) if enabled else []
    if any("forward" in vars(block) for block in blocks):
        raise ValueError("The encoder blocks are already checkpointed: encoder_checkpointing is open on this model.")
    for block in blocks:
        block.forward = _checkpointed(block.forward)  # an instance attribute shadows the class's forward
    try:
        yield blocks
    finally:
        for block in blocks:
            del block.forward


# ------------------------------------------------------------------------------ frozen-feature caching


def _image_key(row: torch.Tensor) -> tuple[int, bool]:
    """Identify one preprocessed image by its bytes (and whether autocast is on: fp16 heads differ)."""
    return hash(row.detach().to("cpu").contiguous().numpy().tobytes()), torch.is_autocast_enabled()


class HeadCache(dict):
    """Head activations by image (see :func:`cached_encoder_head`); :meth:`head` computes one once.

    One cache may serve several runs (a learning-rate search, a comparison): every fresh copy of the
    same pretrained model has the same frozen head. :func:`cached_encoder_head` checks that (the cut
    and a fingerprint of the head's weights) before it reuses a cache.
    """

    def __init__(self, last_blocks: int | None = None) -> None:
        super().__init__()
        self.last_blocks = last_blocks  # where runs that do not choose a cut (decoder-only) cut the encoder
        self.stages: list = []
        self.signature: tuple | None = None  # (last_blocks, fingerprint of the head's weights)

    def head(self, row: torch.Tensor) -> torch.Tensor:
        """The frozen head's output for one preprocessed image ``(1, 3, S, S)``, computed on first sight."""
        key = _image_key(row)
        if key not in self:
            with torch.no_grad():
                self[key] = peft.run_stages(self.stages, row)
        return self[key]


@contextlib.contextmanager
def cached_encoder_head(
    sam: nn.Module, last_blocks: int, cache: HeadCache | None = None, inference: bool = False
) -> Iterator[HeadCache]:
    """While open, the image encoder computes its frozen head once per image and reuses it.

    The encoder is cut before its last ``last_blocks`` transformer blocks (:func:`utils.peft.split_encoder`).
    Each call runs the head (no gradients) only for images it has not seen, identified by their
    preprocessed bytes, and the tail (with gradients when enabled) every time: the same outputs and
    the same gradients for every parameter of the tail, as long as nothing in the head trains
    (checked). Yields the cache (key -> head activation); the encoder's ``forward`` is restored on exit.
    Pass a ``cache`` filled by an earlier run on the same pretrained model to reuse its activations.
    ``inference=True`` skips the trainable-head check, for predictions that run no backward pass (a
    freshly loaded model has every parameter trainable; its head's weights are still checked).
    """
    head, tail = peft.split_encoder(sam, last_blocks)
    trained = [p for stage in head for m in stage.modules for p in m.parameters() if p.requires_grad]
    if trained and not inference:
        raise ValueError(
            f"{len(trained)} parameter tensor(s) before the last {last_blocks} blocks are trainable; "
            "their activations cannot be cached. Apply the strategy with last_blocks= too."
        )
    encoder = sam.image_encoder
    if "forward" in vars(encoder):
        raise ValueError("The image encoder's forward is already replaced (a cache is open on this model).")
    with torch.no_grad():
        weights = [p for stage in head for m in stage.modules for p in m.parameters()]
        signature = (int(last_blocks), float(sum(p.double().abs().sum().item() for p in weights)))
    cache = HeadCache() if cache is None else cache
    if cache.signature is not None and cache.signature != signature:
        raise ValueError(
            f"This HeadCache was filled with another cut or other head weights {cache.signature} than "
            f"this model's {signature}: use a fresh HeadCache."
        )
    cache.stages, cache.signature = head, signature

    def forward(x: torch.Tensor) -> torch.Tensor:
        return peft.run_stages(tail, torch.cat([cache.head(row) for row in x.split(1)]))

    encoder.forward = forward
    try:
        yield cache
    finally:
        del encoder.forward


# ------------------------------------------------------------------------------------------ training


@dataclass
class TrainResult:
    """What :func:`train` measured. ``history``: one row per step (``step`` 0 = before training)."""

    strategy: str
    history: pd.DataFrame
    dice_before: float
    dice_after: float
    step_time_s: float
    peak_mem_mb: float
    memory_metric: str  # "cuda_max_allocated" or "cpu_rss"
    rss_before_mb: float | None
    extra_mem_mb: float
    device: str
    amp: bool
    steps: int
    seconds: float
    embed_seconds: float
    trainable: int = 0
    total: int = 0
    share: float = 0.0
    encoder_images: int = 0  # images the image encoder processed (embedding, training and evaluation)
    options: dict[str, Any] = field(default_factory=dict)
    val_before: pd.DataFrame | None = None  # per-case held-out Dice before training (case, mode, dice)
    val_after: pd.DataFrame | None = None  # ... and after the last step
    val_tables: dict[int, pd.DataFrame] = field(default_factory=dict)  # step -> per-case table, every evaluation

    def summary(self) -> dict[str, Any]:
        """Scalars for ``run.save_results`` (no DataFrame)."""
        keys = (
            "strategy dice_before dice_after step_time_s peak_mem_mb extra_mem_mb memory_metric trainable total share "
            "device amp steps seconds embed_seconds encoder_images"
        ).split()
        out = {k: getattr(self, k) for k in keys}
        out["final_loss"] = (
            float(self.history["loss"].dropna().iloc[-1]) if self.history["loss"].notna().any() else None
        )
        return out


def _train_mode(sam: nn.Module) -> None:
    """``train()`` everywhere except BatchNorm, whose running statistics stay as pretrained."""
    sam.train()
    for module in sam.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _check_cases(cases, name: str) -> list:
    if cases is None or isinstance(cases, (str, bytes)):
        raise ValueError(f"{name} must be a list of utils.datasets.Case objects; got {cases!r}.")
    cases = list(cases)
    for case in cases:
        if not hasattr(case, "image") or not hasattr(case, "mask"):
            raise ValueError(f"{name} must hold Case objects (with .image and .mask); got {type(case).__name__}.")
        if not np.asarray(case.mask).any():
            raise ValueError(f"{name}: case {getattr(case, 'name', '?')!r} has an empty mask; no prompt can be drawn.")
    return cases


class _CaseStream:
    """Case indices: a seeded shuffle of all cases, then another, ... (every case once per epoch)."""

    def __init__(self, n: int, rng: np.random.Generator) -> None:
        self.n, self.rng, self.queue = n, rng, []

    def take(self, k: int) -> list[int]:
        while len(self.queue) < k:
            self.queue += self.rng.permutation(self.n).tolist()
        taken, self.queue = self.queue[:k], self.queue[k:]
        return taken


def train(
    sam: nn.Module,
    train_cases: Sequence[Any],
    val_cases: Sequence[Any] | None = None,
    strategy_name: str | None = None,
    steps: int = 100,
    lr: float = 1e-4,
    batch_size: int = 2,
    accumulate: int = 1,
    eval_every: int | None = 25,
    seed: int = 0,
    device: str | torch.device | None = None,
    amp: bool = True,
    progress: bool = True,
    *,
    prompt: str = "box",
    box_jitter: float = 0.1,
    n_points: int = 1,
    weight_decay: float = 0.01,
    loss_size: int = 256,
    eval_modes: Sequence[str] = ("box",),
    strategy_options: dict[str, Any] | None = None,
    checkpoint_encoder: bool = False,
    head_cache: HeadCache | None = None,
    schedule: str = "constant",
) -> TrainResult:
    """Fine-tune ``sam`` in place for ``steps`` optimiser steps and measure it (see the module docstring).

    ``strategy_name``: a :data:`utils.peft.STRATEGIES` name applied to a fresh model first (with
    ``strategy_options``), or ``None`` (or the same name) when ``sam`` is already adapted (e.g.
    ``peft.lora(sam)``). ``val_cases`` (may be empty) are scored with ``eval_modes``
    (:data:`utils.evaluate.MODES`) before training, every ``eval_every`` steps (``None`` or 0: only
    before and after) and after the last step;
    ``val_dice`` is the first mode's mean Dice. ``device``: ``None`` keeps the model where it is.
    Returns a :class:`TrainResult`; the model is left in eval mode.

    ``checkpoint_encoder=True`` runs the training steps under :func:`encoder_checkpointing` when an
    encoder parameter is trainable (adapter, LoRA, SVD, full; ignored for ``decoder_only``): same loss
    and gradients, one extra encoder forward per micro-batch, and a fraction of the activation memory.
    SAM ViT-B at 1024 x 1024, batch 1, one step (random weights), MEASURED on a 2-core CPU in float32
    as peak RSS growth (``ru_maxrss``) over the loaded model: LoRA 7.4 GiB without checkpointing, 3.0
    GiB with; full fine-tuning 8.3 GiB without, 3.2 GiB with. ESTIMATED for CUDA with float16 autocast
    (no GPU used): tensor memory tracked on fake CUDA tensors (``MemTracker`` in ``FakeTensorMode``,
    which applies CUDA's autocast rules and matched the CPU figures within 20%), forward pass only
    (autograd will not run backward on fake CUDA tensors): full fine-tuning at batch 2 without
    checkpointing 13.7 GiB plus 0.7 GiB of AdamW state, at the limit of a T4's 15 GiB before the CUDA
    context and the backward pass; with checkpointing at batch 1, 1.8 GiB plus 0.7 GiB, and the whole
    step stays below its float32 peak of 3.7 GiB plus 0.2 GiB of half-precision weight copies.
    Activations shrink much less than half under autocast: attention's softmax runs in float32.

    ``schedule``: the learning rate over the steps, a :data:`SCHEDULES` name: ``"constant"`` (``lr`` every
    step) or ``"cosine"`` (``lr`` at the first step, decaying to 0 along half a cosine by the last, so
    the last steps make small moves and the curve settles where training took it).

    When the strategy put every trainable encoder parameter in the last K blocks (``last_blocks=K`` in
    ``strategy_options``), the encoder's frozen head is computed once per image
    (:func:`cached_encoder_head`); ``head_cache`` shares those activations between runs.
    """
    train_cases = _check_cases(train_cases, "train_cases")
    val_cases = _check_cases(val_cases or [], "val_cases")
    if not train_cases:
        raise ValueError("train_cases is empty: give at least one Case to train on.")
    steps = whole_number(steps, "steps", minimum=1)
    batch_size = whole_number(batch_size, "batch_size", minimum=1)
    accumulate = whole_number(accumulate, "accumulate", minimum=1)
    loss_size = whole_number(loss_size, "loss_size", minimum=8)
    if eval_every is not None:
        eval_every = whole_number(eval_every, "eval_every") or None
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number such as 1e-4; got {lr!r}.")
    if prompt not in PROMPT_KINDS:
        raise ValueError(f"prompt must be one of {', '.join(PROMPT_KINDS)}; got {prompt!r}.")
    seed = whole_number(seed, "seed")
    eval_modes = _check_eval_modes(eval_modes)
    if not isinstance(checkpoint_encoder, bool):
        raise ValueError(f"checkpoint_encoder must be True or False; got {checkpoint_encoder!r}.")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}; got {schedule!r}.")
    # Everything is checked before the model is touched: a bad argument leaves it as it was.
    target_device = None if device is None else device if isinstance(device, torch.device) else get_device(device)
    strategy = _apply_strategy(sam, strategy_name, strategy_options)
    if target_device is not None:
        sam.to(target_device)
    torch_device = next(sam.parameters()).device
    use_amp = bool(amp) and torch_device.type == "cuda"
    if not any(p.requires_grad for p in sam.parameters()):
        raise ValueError("No parameter of this model is trainable; apply a strategy from utils.peft first.")
    trainable, total, share = peft.trainable_parameters(sam)

    seed_everything(seed)
    rng = np.random.default_rng(seed)
    images_encoded = [0]  # every image the encoder sees from here on: embedding, training, evaluation

    def count(_module, inputs, _output) -> None:
        images_encoded[0] += len(inputs[0])

    hook = sam.image_encoder.register_forward_hook(count)
    try:
        settings = _Settings(
            strategy, steps, float(lr), batch_size, accumulate, eval_every, seed, torch_device, use_amp,
            bool(progress), prompt, float(box_jitter), n_points, float(weight_decay), loss_size, tuple(eval_modes),
            checkpoint_encoder, schedule,
        )  # fmt: skip
        result = _run(sam, train_cases, val_cases, settings, rng, head_cache)
    finally:
        hook.remove()
    result.encoder_images = images_encoded[0]
    result.trainable, result.total, result.share = trainable, total, share
    return result


@dataclass(frozen=True)
class _Settings:
    """train()'s checked arguments."""

    strategy: str
    steps: int
    lr: float
    batch_size: int
    accumulate: int
    eval_every: int | None
    seed: int
    device: torch.device
    amp: bool
    progress: bool
    prompt: str
    box_jitter: float
    n_points: int
    weight_decay: float
    loss_size: int
    modes: tuple[str, ...]
    checkpoint_encoder: bool
    schedule: str


def _cached_blocks(sam: nn.Module) -> int | None:
    """K when the strategy put every trainable encoder parameter in the last K blocks, else ``None``."""
    if not any(p.requires_grad for p in sam.image_encoder.parameters()):
        return None  # decoder-only: the whole embedding is computed once instead
    return ((peft.adaptation(sam) or {}).get("options") or {}).get("last_blocks")


def _run(
    sam: nn.Module,
    train_cases: list,
    val_cases: list,
    cfg: _Settings,
    rng: np.random.Generator,
    head_cache: HeadCache | None = None,
) -> TrainResult:
    """The body of :func:`train`, after its checks: with the frozen head cached when the strategy allows."""
    last_blocks = _cached_blocks(sam)
    frozen = not any(p.requires_grad for p in sam.image_encoder.parameters())
    if last_blocks is None and frozen and head_cache is not None:
        last_blocks = head_cache.last_blocks  # decoder-only embeds each image once; the shared head makes it cheaper
    if last_blocks is None:
        return _train_loop(sam, train_cases, val_cases, cfg, rng, None)
    with cached_encoder_head(sam, last_blocks, head_cache) as cache:
        known = len(cache)
        result = _train_loop(sam, train_cases, val_cases, cfg, rng, cache)
    result.options["cached_head"] = {"last_blocks": last_blocks, "images": len(cache) - known}  # heads computed here
    return result


def _train_loop(
    sam: nn.Module,
    train_cases: list,
    val_cases: list,
    cfg: _Settings,
    rng: np.random.Generator,
    cache: HeadCache | None,
) -> TrainResult:
    from tqdm.auto import tqdm

    strategy, steps, device, modes, seed = cfg.strategy, cfg.steps, cfg.device, cfg.modes, cfg.seed
    accumulate, loss_size = cfg.accumulate, cfg.loss_size

    # Decoder-only: the encoder never changes, so every image is embedded once (train and validation).
    frozen_encoder = not any(p.requires_grad for p in sam.image_encoder.parameters())
    checkpointed = cfg.checkpoint_encoder and not frozen_encoder  # a frozen encoder keeps no activations
    predictor = CachedPredictor(CoursePredictor(sam)) if frozen_encoder else CoursePredictor(sam)
    samples = [_prepare(c, predictor, loss_size, device) for c in train_cases]
    started = time.perf_counter()
    embeddings = None
    if frozen_encoder:
        embeddings = precompute_embeddings(sam, train_cases, progress=cfg.progress, predictor=predictor)
    if cache is not None:  # the frozen head of every training image, once, in the precision steps use
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=cfg.amp):
            for sample in samples:
                cache.head(sam.preprocess(sample.image[None]))
    embed_seconds = time.perf_counter() - started

    tables: list[pd.DataFrame] = []  # per-case validation tables, in order (before training first)
    history = [{"step": 0, "loss": float("nan"), **_validation(sam, val_cases, modes, seed, predictor, tables)}]
    loss_fn = make_loss()
    optimizer = torch.optim.AdamW(
        [p for p in sam.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, SCHEDULES[cfg.schedule](steps))
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp)
    on_cuda = device.type == "cuda"
    if on_cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    rss_before = None if on_cuda else _rss_mb()
    rss_peak = rss_before or 0.0
    allocated_before = torch.cuda.memory_allocated(device) / 2**20 if on_cuda else 0.0
    stream = _CaseStream(len(samples), rng)
    step_times: list[float] = []
    _train_mode(sam)
    train_started = time.perf_counter()
    with encoder_checkpointing(sam, checkpointed):
        bar = tqdm(range(1, steps + 1), desc=f"training ({strategy})", unit="step", disable=not cfg.progress)
        for step in bar:
            step_started = time.perf_counter()
            used_lr = float(optimizer.param_groups[0]["lr"])  # this step's, before the schedule moves it
            optimizer.zero_grad(set_to_none=True)
            losses = []
            for _ in range(accumulate):
                chosen = stream.take(cfg.batch_size)
                batch = [samples[i] for i in chosen]
                prompts = [sample_prompt(s.mask, rng, cfg.prompt, cfg.box_jitter, cfg.n_points) for s in batch]
                cached = None if embeddings is None else [embeddings[i] for i in chosen]
                with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=cfg.amp):
                    logits = _forward(sam, batch, prompts, predictor, loss_size, cached)
                loss = loss_fn(logits.float(), torch.stack([s.target for s in batch]))
                if not on_cuda:
                    rss_peak = max(rss_peak, _rss_mb())  # activations are alive now
                scaler.scale(loss / accumulate).backward()
                losses.append(loss.item())
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            if on_cuda:
                torch.cuda.synchronize(device)
            else:
                rss_peak = max(rss_peak, _rss_mb())
            step_times.append(time.perf_counter() - step_started)
            row = {"step": step, "loss": float(np.mean(losses)), "lr": used_lr}
            if step == steps or (cfg.eval_every is not None and step % cfg.eval_every == 0):
                row.update(_validation(sam, val_cases, modes, seed, predictor, tables))
            history.append(row)
            bar.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k in ("loss", "val_dice")})
    seconds = time.perf_counter() - train_started
    peak = float(torch.cuda.max_memory_allocated(device) / 2**20 if on_cuda else rss_peak)
    sam.eval()
    table = pd.DataFrame(history)
    has_val = "val_dice" in table
    return TrainResult(
        strategy=strategy,
        history=table,
        dice_before=float(table["val_dice"].iloc[0]) if has_val else float("nan"),
        dice_after=float(table["val_dice"].iloc[-1]) if has_val else float("nan"),
        step_time_s=float(statistics.median(step_times)),
        peak_mem_mb=peak,
        extra_mem_mb=peak - (allocated_before if on_cuda else rss_before),
        memory_metric="cuda_max_allocated" if on_cuda else "cpu_rss",
        rss_before_mb=rss_before,
        device=str(device),
        amp=cfg.amp,
        steps=steps,
        seconds=seconds,
        embed_seconds=embed_seconds,
        val_before=tables[0] if tables else None,
        val_after=tables[-1] if tables else None,
        val_tables=dict(zip([row["step"] for row in history if "val_dice" in row], tables)),
        options={
            "lr": cfg.lr,
            "batch_size": cfg.batch_size,
            "accumulate": accumulate,
            "prompt": cfg.prompt,
            "box_jitter": cfg.box_jitter,
            "seed": seed,
            "eval_modes": list(modes),
            "checkpoint_encoder": checkpointed,
            "schedule": cfg.schedule,
            "adaptation": peft.adaptation(sam),
        },
    )


def _apply_strategy(sam: nn.Module, strategy: str | None, options: dict[str, Any] | None) -> str:
    record = peft.adaptation(sam)
    if strategy is not None and strategy not in peft.STRATEGIES:
        raise ValueError(f"Unknown strategy {strategy!r}; choose one of {', '.join(peft.STRATEGIES)}.")
    if record is None:
        if strategy is None:
            raise ValueError(
                f"This model has no strategy applied: pass strategy_name= (one of {', '.join(peft.STRATEGIES)}) "
                "or apply one from utils.peft first, e.g. peft.lora(sam)."
            )
        peft.STRATEGIES[strategy](sam, **(options or {}))
        return strategy
    if strategy is not None and strategy != record["strategy"]:
        raise ValueError(
            f"The model is already adapted with {record['strategy']!r} but strategy_name={strategy!r} was asked "
            "for; pass strategy_name=None or start from a fresh model."
        )
    if options:
        raise ValueError("strategy_options only apply when train() applies the strategy to a fresh model.")
    return record["strategy"]


def _validation(
    sam: nn.Module,
    cases: Sequence[Any],
    modes: Sequence[str],
    seed: int,
    predictor: CoursePredictor | CachedPredictor,
    tables: list[pd.DataFrame],
) -> dict[str, float]:
    if not cases or not modes:
        return {}
    # A caching predictor may only be reused while the encoder is frozen; otherwise embed afresh.
    reuse = predictor if isinstance(predictor, CachedPredictor) else None
    table = _evaluate(sam, cases, modes, seed, reuse)
    tables.append(table[["case", "mode", "dice"]].reset_index(drop=True))
    means = table.groupby("mode")["dice"].mean()
    row = {f"val_{mode}": float(means[mode]) for mode in modes}
    row["val_dice"] = row[f"val_{modes[0]}"]
    return row


# ------------------------------------------------------------------------------------------ reporting


def results_table(results: dict[str, TrainResult] | Sequence[TrainResult]):
    """One row per run: trainable parameters and share, Dice before/after, step time, peak memory, seconds.

    ``results`` maps a label to a :class:`TrainResult` (or is a list, labelled by strategy).
    """
    items = results.items() if isinstance(results, dict) else [(r.strategy, r) for r in results]
    rows = []
    for label, r in items:
        rows.append(
            {
                "run": label,
                "strategy": r.strategy,
                "trainable": r.trainable,
                "share_%": 100 * r.share,
                "dice_before": r.dice_before,
                "dice_after": r.dice_after,
                "step_time_s": r.step_time_s,
                "peak_mem_mb": r.peak_mem_mb,
                "extra_mem_mb": r.extra_mem_mb,
                "memory_metric": r.memory_metric,
                "train_s": r.seconds,
                "embed_s": r.embed_seconds,
            }
        )
    return pd.DataFrame(rows, columns=None if rows else ["run"]).set_index("run")  # no runs: an empty table


def plot_learning_curves(results: dict[str, TrainResult] | Sequence[TrainResult]):
    """Training loss (left) and held-out Dice (right) against the step, one line per run."""
    import matplotlib.pyplot as plt

    items = list(results.items()) if isinstance(results, dict) else [(r.strategy, r) for r in results]
    fig, (loss_ax, dice_ax) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    for label, r in items:
        history = r.history
        line = loss_ax.plot(history["step"], history["loss"], label=label, linewidth=1.5)[0]
        if "val_dice" in history:
            val = history.dropna(subset=["val_dice"])
            dice_ax.plot(val["step"], val["val_dice"], marker="o", color=line.get_color(), label=label)
    loss_ax.set(xlabel="optimiser step", ylabel="training loss (Dice + BCE)", title="training loss")
    modes = {r.options.get("eval_modes", ["box"])[0] for _, r in items}
    prompts = modes.pop() if len(modes) == 1 else "first evaluation mode"
    dice_ax.set(xlabel="optimiser step", ylabel="held-out Dice", title=f"held-out Dice ({prompts})", ylim=(0, 1))
    for ax in (loss_ax, dice_ax):
        ax.grid(alpha=0.3)
    if items:  # none when every strategy of a comparison ran out of memory
        loss_ax.legend(fontsize=8)
    return fig
