"""Adapting SAM: which parameters train, and the small modules that parameter-efficient methods add.

Five strategies, one function each. Each takes a ``segment_anything.modeling.Sam`` (SAM's ViT
encoder or LiteMedSAM's TinyViT), **modifies it in place**, sets ``requires_grad`` on exactly the
parameters the method trains (everything else is frozen) and returns the same object:

============  ==========================================================================  ==============
strategy      what trains                                                                 paper
============  ==========================================================================  ==============
decoder_only  the mask decoder (the encoder's embeddings can then be computed once)        SAM/MedSAM
adapter       bottleneck adapters in every encoder transformer block: one after the       MSA
              attention (serial, with a skip), one beside the MLP (parallel, x 0.5)
lora          low-rank updates ``W + (alpha/r) B A`` of the attention ``qkv`` projections  SAMed
svd           scale and shift of the singular values of every Linear in the encoder's     S-SAM
              transformer blocks: ``W' = U diag(relu(S * scale + shift)) Vh``
full          every parameter                                                              MedSAM
============  ==========================================================================  ==============

Identity at initialisation: LoRA's ``B`` is zero, the adapters' up-projections are zero and SVD
starts at scale 1 and shift 0, so an adapted model computes exactly what the base model computes
until the first optimiser step (tested bit for bit).

``adapter``, ``lora`` and ``svd`` train only what they add, with the decoder frozen (S-SAM's
choice). MSA and SAMed also train the mask decoder: pass ``train_decoder=True``. The prompt encoder
is frozen in every strategy but ``full``.

**Which layers.** "Transformer blocks" are the encoder modules that have an ``attn`` with a ``qkv``
Linear and an ``mlp``: SAM ViT's 12 (ViT-B) ``Block``s, and TinyViT's 10 ``TinyViTBlock``s
(``layers[1:]``). Everything else in the encoder stays frozen under adapter/LoRA/SVD: SAM's patch
embedding, positional embeddings and neck, and TinyViT's **conv stage** (the patch embedding, the
MBConv blocks of ``layers[0]``, the ``PatchMerging`` downsamplers, each block's depth-wise
``local_conv`` and the neck). Only ``full`` trains them. TinyViT's BatchNorm layers live in that
conv stage; :func:`utils.training.train` keeps their running statistics frozen for every strategy.

**SVD cost.** ``svd`` factorises each targeted weight once when it is applied (ViT-B: 48 matrices,
the largest 3072 x 768; LiteMedSAM: 40 small ones). On a CPU this runs single-threaded on purpose:
multi-threaded LAPACK SVD was ~80x slower on a busy 2-core machine (960 x 320: 11 s vs 0.14 s).
Each forward pass forms ``W + U diag(s' - S) Vh`` once per batch (ViT-B: 65 G multiply-adds, and
as many again in the backward pass), and ``U``/``Vh`` take 1.3x the memory of the weights they
factorise (ViT-B: 113 M values, 453 MB in float32). ``targets=("qkv",)`` restricts it to the
attention projections (a quarter of that).

**Only the last K blocks.** ``adapter``, ``lora``, ``svd`` and ``full`` take ``last_blocks=K``: the
method then touches only the encoder's last K transformer blocks (``full``: those blocks, everything the
encoder runs after the first of them, e.g. TinyViT's last downsampler and the neck, plus the prompt
encoder and mask decoder). Everything before that point is frozen, so its output for an image never
changes: :func:`split_encoder` cuts the encoder there and :mod:`utils.training` computes the frozen
part once per image (frozen-feature caching). ``None`` (the default) keeps every block.

Helpers: :func:`encoder_stages` / :func:`split_encoder` / :func:`run_stages`, :func:`trainable_parameters`
(count, total, share), :func:`parameter_table`,
:func:`trainable_state_dict` / :func:`save_trainable` / :func:`load_trainable` (only the trained
tensors plus the strategy, loaded with ``weights_only=True``) and :func:`merge_lora` (fold LoRA into
plain Linear layers for inference).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from utils.checks import whole_number

__all__ = [
    "STRATEGIES",
    "TARGETS",
    "Adapter",
    "LoRALinear",
    "ParallelAdapter",
    "SVDLinear",
    "SerialAdapter",
    "Stage",
    "adaptation",
    "adapter",
    "decoder_only",
    "encoder_stages",
    "full",
    "image_encoder",
    "load_trainable",
    "lora",
    "merge_lora",
    "parameter_table",
    "save_trainable",
    "run_stages",
    "split_encoder",
    "svd",
    "trainable_parameters",
    "trainable_state_dict",
    "transformer_blocks",
]

TARGETS = ("qkv", "proj", "mlp")  # Linear layers of a transformer block that LoRA/SVD can target
FORMAT = "sam-course-peft/1"  # tag of files written by save_trainable
_ATTRIBUTE = "course_adaptation"  # where a strategy records itself on the Sam object


# ------------------------------------------------------------------------------------- the modules


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update: ``y = base(x) + (alpha / rank) x A^T B^T``.

    ``lora_A`` (rank x in) starts Kaiming-uniform (as ``nn.Linear`` and HF ``peft`` initialise it),
    ``lora_B`` (out x rank) starts at zero, so the layer equals ``base`` until ``B`` is trained.
    :meth:`merge` folds the update into one plain ``nn.Linear`` for inference.
    """

    def __init__(self, base: nn.Linear, rank: int = 4, alpha: float | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        self.base = base
        self.rank = rank
        self.alpha = float(rank if alpha is None else alpha)
        self.scaling = self.alpha / rank
        factory = {"device": base.weight.device, "dtype": base.weight.dtype}
        a = torch.empty(rank, base.in_features)  # drawn on the CPU so a seeded CPU generator decides it
        nn.init.kaiming_uniform_(a, a=math.sqrt(5))
        self.lora_A = nn.Parameter(a.to(**factory))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, **factory))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def delta_weight(self) -> torch.Tensor:
        """The update ``(alpha / rank) B A`` in the shape of ``base.weight``."""
        return (self.lora_B @ self.lora_A) * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = F.linear(F.linear(self.dropout(x), self.lora_A), self.lora_B) * self.scaling
        return self.base(x) + update

    @torch.no_grad()
    def merge(self) -> nn.Linear:
        """A plain ``nn.Linear`` with weight ``W + (alpha / rank) B A`` (frozen, like the base)."""
        merged = nn.Linear(
            self.in_features,
            self.out_features,
            bias=self.base.bias is not None,
            device=self.base.weight.device,
            dtype=self.base.weight.dtype,
        )
        merged.weight.copy_(self.base.weight + self.delta_weight().to(self.base.weight.dtype))
        if self.base.bias is not None:
            merged.bias.copy_(self.base.bias)
        merged.requires_grad_(False)
        return merged

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha:g}"


@contextlib.contextmanager
def _one_cpu_thread(device: torch.device) -> Iterator[None]:
    """Run LAPACK on one thread: threaded CPU SVD crawls when cores are shared (see the module notes)."""
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class SVDLinear(nn.Module):
    """A frozen ``nn.Linear`` whose singular values are re-weighted by a trainable scale and shift.

    With ``W = U diag(S) Vh`` (computed once, stored as non-persistent buffers), the layer uses
    ``W' = U diag(relu(S * sv_scale + sv_shift)) Vh`` (S-SAM). It is computed as
    ``W + U diag(relu(S * sv_scale + sv_shift) - S) Vh``, which is the same matrix but equals ``W``
    *exactly* at the start (scale 1, shift 0), instead of up to SVD round-off.
    Trainable: ``sv_scale`` and ``sv_shift``, one value each per singular value (min(out, in)).
    """

    def __init__(self, base: nn.Linear) -> None:
        super().__init__()
        self.base = base
        weight = base.weight.detach()
        rank = min(weight.shape)
        if weight.device.type == "meta":  # shapes only (parameter counting): no decomposition
            u = torch.empty(weight.shape[0], rank, device="meta")
            s = torch.empty(rank, device="meta")
            vh = torch.empty(rank, weight.shape[1], device="meta")
        else:
            with _one_cpu_thread(weight.device):
                u, s, vh = torch.linalg.svd(weight.float(), full_matrices=False)
        dtype = weight.dtype
        self.register_buffer("U", u.to(dtype), persistent=False)
        self.register_buffer("S", s.to(dtype), persistent=False)
        self.register_buffer("Vh", vh.to(dtype), persistent=False)
        self.sv_scale = nn.Parameter(torch.ones(rank, device=weight.device, dtype=dtype))
        self.sv_shift = nn.Parameter(torch.zeros(rank, device=weight.device, dtype=dtype))

    def singular_values(self) -> torch.Tensor:
        """The adapted singular values ``relu(S * sv_scale + sv_shift)``."""
        return F.relu(self.S * self.sv_scale + self.sv_shift)

    def delta_weight(self) -> torch.Tensor:
        return (self.U * (self.singular_values() - self.S)) @ self.Vh

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.base.weight + self.delta_weight(), self.base.bias)

    @torch.no_grad()
    def merge(self) -> nn.Linear:
        """A plain frozen ``nn.Linear`` with the adapted weight ``W'``."""
        merged = nn.Linear(
            self.base.in_features,
            self.base.out_features,
            bias=self.base.bias is not None,
            device=self.base.weight.device,
            dtype=self.base.weight.dtype,
        )
        merged.weight.copy_(self.base.weight + self.delta_weight())
        if self.base.bias is not None:
            merged.bias.copy_(self.base.bias)
        merged.requires_grad_(False)
        return merged

    def extra_repr(self) -> str:
        return f"singular_values={self.S.numel()}"


class Adapter(nn.Module):
    """Bottleneck ``x -> up(GELU(down(x)))`` (dim -> hidden -> dim) with ``up`` zero-initialised (outputs 0)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.down = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.up = nn.Linear(hidden, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.act(self.down(x)))


class SerialAdapter(nn.Module):
    """``y = module(x); y + adapter(y)``: an adapter on a module's output, with a skip (MSA's attention adapter)."""

    def __init__(self, module: nn.Module, adapter: Adapter) -> None:
        super().__init__()
        self.module = module
        self.adapter = adapter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.module(x)
        return y + self.adapter(y)


class ParallelAdapter(nn.Module):
    """``module(x) + scale * adapter(x')``: an adapter beside a module (MSA's MLP adapter, scale 0.5).

    ``x'`` is what the MLP itself reads: SAM's ``MLPBlock`` gets already-normalised tokens (``x' = x``);
    TinyViT's ``Mlp`` normalises inside (``mlp.norm``), so the adapter reads ``mlp.norm(x)`` too.
    """

    def __init__(self, module: nn.Module, adapter: Adapter, scale: float = 0.5) -> None:
        super().__init__()
        self.module = module
        self.adapter = adapter
        self.scale = scale
        self.normalises_inside = isinstance(getattr(module, "norm", None), nn.LayerNorm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.module.norm(x) if self.normalises_inside else x
        return self.module(x) + self.scale * self.adapter(tokens)

    def extra_repr(self) -> str:
        return f"scale={self.scale:g}"


# ----------------------------------------------------------------------------------- finding layers


def _is_block(module: nn.Module) -> bool:
    attn = getattr(module, "attn", None)
    return isinstance(getattr(attn, "qkv", None), nn.Linear) and isinstance(getattr(module, "mlp", None), nn.Module)


def transformer_blocks(sam: nn.Module) -> list[nn.Module]:
    """The image encoder's transformer blocks: SAM ViT's ``blocks``; TinyViT's ``layers[1:]`` blocks.

    A block is a module with ``attn.qkv`` (an ``nn.Linear``) and ``mlp``. Raises ``ValueError``
    when there are none (e.g. on a model already wrapped by :func:`adapter`).
    """
    encoder = image_encoder(sam)
    blocks = [m for m in encoder.modules() if _is_block(m)]
    if not blocks:
        raise ValueError(
            f"Found no transformer blocks (modules with attn.qkv and mlp) in {type(encoder).__name__}; "
            "these strategies support SAM's ImageEncoderViT and LiteMedSAM's TinyViT on a fresh model."
        )
    return blocks


def image_encoder(sam: nn.Module) -> nn.Module:
    """``sam.image_encoder``, after checking that ``sam`` is a segment_anything ``Sam`` (ValueError otherwise)."""
    for part in ("image_encoder", "prompt_encoder", "mask_decoder"):
        if not isinstance(getattr(sam, part, None), nn.Module):
            raise ValueError(
                f"Expected a segment_anything Sam (with image_encoder, prompt_encoder, mask_decoder); "
                f"got {type(sam).__name__} without {part}. Build one with utils.models.load_sam(name)."
            )
    return sam.image_encoder


@dataclass(frozen=True)
class Stage:
    """One step of the image encoder's forward pass: ``run(x)``; ``modules`` hold its parameters."""

    kind: str  # "stem", "block", "downsample" or "neck"
    run: Callable[[torch.Tensor], torch.Tensor]
    modules: tuple[nn.Module, ...]


def encoder_stages(sam: nn.Module) -> list[Stage]:
    """The image encoder's forward pass as a list of :class:`Stage` s; running them in order is the encoder.

    SAM ViT: stem (patch embedding + positional embedding), its blocks, neck. LiteMedSAM's TinyViT:
    stem (patch embedding + the conv stage ``layers[0]``), per later layer its blocks then its
    downsampler (if any), neck (TinyViT's own reshape to 64 x 64 tokens first). Works on adapted models.
    """
    encoder = image_encoder(sam)
    if isinstance(getattr(encoder, "blocks", None), nn.ModuleList) and hasattr(encoder, "neck"):  # SAM ViT

        def stem(x: torch.Tensor) -> torch.Tensor:
            x = encoder.patch_embed(x)
            return x if encoder.pos_embed is None else x + encoder.pos_embed

        stages = [Stage("stem", stem, (encoder.patch_embed,))]
        stages += [Stage("block", block, (block,)) for block in encoder.blocks]
        stages.append(Stage("neck", lambda x: encoder.neck(x.permute(0, 3, 1, 2)), (encoder.neck,)))
        return stages
    if isinstance(getattr(encoder, "layers", None), nn.ModuleList) and hasattr(encoder, "neck"):  # TinyViT
        first = encoder.layers[0]
        stages = [Stage("stem", lambda x: first(encoder.patch_embed(x)), (encoder.patch_embed, first))]
        for layer in encoder.layers[1:]:
            stages += [Stage("block", block, (block,)) for block in layer.blocks]
            if layer.downsample is not None:
                stages.append(Stage("downsample", layer.downsample, (layer.downsample,)))

        def neck(x: torch.Tensor) -> torch.Tensor:  # TinyViT.forward_features hard-codes the 64 x 64 grid
            return encoder.neck(x.view(x.shape[0], 64, 64, x.shape[-1]).permute(0, 3, 1, 2))

        return stages + [Stage("neck", neck, (encoder.neck,))]
    raise ValueError(f"Cannot split {type(encoder).__name__}: only SAM's ImageEncoderViT and TinyViT are known.")


def split_encoder(sam: nn.Module, last_blocks: int) -> tuple[list[Stage], list[Stage]]:
    """(head, tail): the stages before the first of the last ``last_blocks`` blocks, and from it on."""
    stages = encoder_stages(sam)
    starts = [i for i, stage in enumerate(stages) if stage.kind == "block"]
    last_blocks = whole_number(last_blocks, "last_blocks", minimum=1)
    if last_blocks > len(starts):
        raise ValueError(f"last_blocks={last_blocks} but the encoder has {len(starts)} transformer blocks.")
    cut = starts[-last_blocks]
    return stages[:cut], stages[cut:]


def run_stages(stages: list[Stage], x: torch.Tensor) -> torch.Tensor:
    """Run ``stages`` in order on ``x``."""
    for stage in stages:
        x = stage.run(x)
    return x


def _chosen_blocks(sam: nn.Module, last_blocks: int | None) -> list[nn.Module]:
    blocks = transformer_blocks(sam)
    if last_blocks is None:
        return blocks
    last_blocks = whole_number(last_blocks, "last_blocks", minimum=1)
    if last_blocks > len(blocks):
        raise ValueError(f"last_blocks={last_blocks} but the encoder has {len(blocks)} transformer blocks.")
    return blocks[-last_blocks:]


def _target_linears(block: nn.Module, targets: tuple[str, ...]) -> list[tuple[nn.Module, str]]:
    """(parent, attribute) of each Linear to replace in ``block`` for ``targets``."""
    found = []
    if "qkv" in targets:
        found.append((block.attn, "qkv"))
    if "proj" in targets and isinstance(getattr(block.attn, "proj", None), nn.Linear):
        found.append((block.attn, "proj"))
    if "mlp" in targets:
        found += [(block.mlp, name) for name, child in block.mlp.named_children() if isinstance(child, nn.Linear)]
    return found


# ------------------------------------------------------------------------------------ the strategies


def _check_fresh(sam: nn.Module) -> None:
    image_encoder(sam)
    done = adaptation(sam)
    if done is not None:
        raise ValueError(
            f"This model is already adapted with {done['strategy']!r}; strategies do not stack. "
            "Load a fresh model (utils.models.load_sam) and apply one strategy to it."
        )


def _last(last_blocks: int | None) -> dict[str, int]:
    """The ``last_blocks`` option as recorded: absent when every block is adapted (older files load)."""
    return {} if last_blocks is None else {"last_blocks": int(last_blocks)}


def _record(sam: nn.Module, strategy: str, **options: Any) -> nn.Module:
    setattr(sam, _ATTRIBUTE, {"strategy": strategy, "options": options, "merged": False})
    return sam


def _freeze_all_but(sam: nn.Module, *trainable: nn.Module) -> None:
    sam.requires_grad_(False)
    for module in trainable:
        module.requires_grad_(True)


def _check_targets(targets, allowed: tuple[str, ...] = TARGETS) -> tuple[str, ...]:
    targets = (targets,) if isinstance(targets, str) else tuple(targets)
    unknown = [t for t in targets if t not in allowed]
    if not targets or unknown:
        raise ValueError(f"targets must be a non-empty subset of {allowed}; got {targets!r}.")
    return tuple(t for t in allowed if t in targets)  # canonical order


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Initialise new modules from their own seed (reproducible whatever the global RNG state).

    Only the CPU generator is forked and seeded, so new weights are drawn on the CPU and then moved.
    """
    whole_number(seed, "seed", hint="it seeds the new weights")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def decoder_only(sam: nn.Module) -> nn.Module:
    """Train the mask decoder only (image and prompt encoders frozen). Returns ``sam``, modified in place.

    The encoder is frozen, so training can embed each image once (``utils.training`` does).
    """
    _check_fresh(sam)
    _freeze_all_but(sam, sam.mask_decoder)
    return _record(sam, "decoder_only")


def full(sam: nn.Module, last_blocks: int | None = None) -> nn.Module:
    """Train every parameter (image encoder incl. TinyViT's conv stage, prompt encoder, mask decoder).

    ``last_blocks=K``: the encoder only from its last K transformer blocks on (those blocks, what runs
    after them, the neck), plus the prompt encoder and mask decoder; the encoder before them is frozen.
    """
    _check_fresh(sam)
    if last_blocks is None:
        sam.requires_grad_(True)
        return _record(sam, "full")
    _, tail = split_encoder(sam, last_blocks)
    _freeze_all_but(sam, *(m for stage in tail for m in stage.modules), sam.prompt_encoder, sam.mask_decoder)
    return _record(sam, "full", last_blocks=int(last_blocks))


def adapter(
    sam: nn.Module,
    ratio: float = 0.125,
    scale: float = 0.5,
    train_decoder: bool = False,
    seed: int = 0,
    last_blocks: int | None = None,
) -> nn.Module:
    """Insert MSA-style bottleneck adapters into every encoder transformer block; train only them.

    Per block: a :class:`SerialAdapter` around ``attn`` (``y + adapter(y)`` on the attention output,
    computed inside each attention window: the adapter is per token) and a :class:`ParallelAdapter`
    beside ``mlp`` (``mlp(x) + scale * adapter(x)``). Hidden width ``round(ratio * dim)``. MSA uses
    ``ratio=0.25`` (about 7% of ViT-B); the default 0.125 (3.7% of ViT-B) keeps CPU runs light.
    Up-projections start at zero, so outputs are unchanged at first. Down-projections are initialised
    from ``seed``. Parameter names gain ``.module`` (the wrapped original) and ``.adapter``.
    ``train_decoder=True`` also trains the mask decoder (as MSA does). ``last_blocks=K``: only the last
    K blocks get adapters. Returns ``sam``, modified in place.
    """
    _check_fresh(sam)
    whole_number(seed, "seed", hint="it seeds the new weights")
    if not (isinstance(ratio, (int, float)) and 0 < ratio <= 4):
        raise ValueError(f"ratio must be in (0, 4] (hidden width = ratio x block width), got {ratio!r}.")
    if not isinstance(scale, (int, float)) or not math.isfinite(scale):
        raise ValueError(f"scale must be a finite number (MSA uses 0.5), got {scale!r}.")
    blocks = _chosen_blocks(sam, last_blocks)
    sam.requires_grad_(False)
    with _seeded(seed):
        for block in blocks:
            dim = block.attn.qkv.in_features
            hidden = max(1, round(ratio * dim))
            device, dtype = block.attn.qkv.weight.device, block.attn.qkv.weight.dtype
            attn_adapter = Adapter(dim, hidden).to(device=device, dtype=dtype)
            mlp_adapter = Adapter(dim, hidden).to(device=device, dtype=dtype)
            block.attn = SerialAdapter(block.attn, attn_adapter)
            block.mlp = ParallelAdapter(block.mlp, mlp_adapter, scale=float(scale))
    if train_decoder:
        sam.mask_decoder.requires_grad_(True)
    options = {"ratio": float(ratio), "scale": float(scale), "train_decoder": bool(train_decoder), "seed": seed}
    return _record(sam, "adapter", **options, **_last(last_blocks))


def lora(
    sam: nn.Module,
    rank: int = 4,
    alpha: float | None = None,
    targets: tuple[str, ...] = ("qkv",),
    dropout: float = 0.0,
    train_decoder: bool = False,
    seed: int = 0,
    last_blocks: int | None = None,
) -> nn.Module:
    """Replace the attention ``qkv`` Linear of every encoder block with a :class:`LoRALinear`; train only A, B.

    ``alpha`` defaults to ``rank`` (scaling 1). SAMed puts rank-4 updates on the q and v slices of
    SAM's fused qkv; here the whole fused ``qkv`` is one LoRA target (as HF ``peft`` does with
    ``target_modules=["qkv"]``), which also adapts k and works for TinyViT, whose qkv output
    interleaves q, k and v per head. ``targets`` may add ``"proj"`` and ``"mlp"``.
    A is initialised from ``seed``; B is zero. ``train_decoder=True`` also trains the mask decoder
    (as SAMed does). ``last_blocks=K``: only the last K blocks. Returns ``sam``, modified in place; use
    :func:`merge_lora` for inference.
    """
    _check_fresh(sam)
    whole_number(seed, "seed", hint="it seeds the new weights")
    rank = whole_number(rank, "rank", minimum=1)
    if alpha is not None and not (isinstance(alpha, (int, float)) and alpha > 0):
        raise ValueError(f"alpha must be a positive number (or None for alpha = rank), got {alpha!r}.")
    if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
    targets = _check_targets(targets)
    layers = [place for block in _chosen_blocks(sam, last_blocks) for place in _target_linears(block, targets)]
    smallest = min(min(getattr(parent, name).weight.shape) for parent, name in layers)
    if rank > smallest:
        raise ValueError(f"rank {rank} exceeds the smallest targeted layer's size {smallest}; lower rank.")
    sam.requires_grad_(False)
    with _seeded(seed):
        for parent, name in layers:
            setattr(parent, name, LoRALinear(getattr(parent, name), rank=rank, alpha=alpha, dropout=float(dropout)))
    if train_decoder:
        sam.mask_decoder.requires_grad_(True)
    return _record(
        sam,
        "lora",
        rank=rank,
        alpha=float(rank if alpha is None else alpha),
        targets=list(targets),
        dropout=float(dropout),
        train_decoder=bool(train_decoder),
        seed=seed,
        **_last(last_blocks),
    )


def svd(
    sam: nn.Module, targets: tuple[str, ...] = TARGETS, train_decoder: bool = False, last_blocks: int | None = None
) -> nn.Module:
    """Wrap the encoder blocks' Linear layers in :class:`SVDLinear`; train only singular-value scale/shift.

    Default targets are every Linear of each transformer block (attention qkv and proj, both MLP
    layers), as S-SAM adapts every weight matrix of the encoder; ``targets=("qkv",)`` narrows it.
    (S-SAM also trains layer norms and positional embeddings and uses text prompts; those are not
    part of this strategy.) Each SVD is computed once here (see the module notes for its cost).
    ``last_blocks=K``: only the last K blocks. Returns ``sam``, modified in place.
    """
    _check_fresh(sam)
    targets = _check_targets(targets)
    blocks = _chosen_blocks(sam, last_blocks)
    sam.requires_grad_(False)
    for block in blocks:
        for parent, name in _target_linears(block, targets):
            setattr(parent, name, SVDLinear(getattr(parent, name)))
    if train_decoder:
        sam.mask_decoder.requires_grad_(True)
    return _record(sam, "svd", targets=list(targets), train_decoder=bool(train_decoder), **_last(last_blocks))


STRATEGIES = {"decoder_only": decoder_only, "adapter": adapter, "lora": lora, "svd": svd, "full": full}


# ------------------------------------------------------------------------------------------ helpers


def adaptation(sam: nn.Module) -> dict[str, Any] | None:
    """What strategy was applied: ``{"strategy", "options", "merged"}``, or ``None`` for a fresh model."""
    return getattr(sam, _ATTRIBUTE, None)


def trainable_parameters(model: nn.Module) -> tuple[int, int, float]:
    """``(trainable, total, share)``: parameters with ``requires_grad``, all parameters, and their ratio.

    ``total`` counts every parameter of the model as it is now, the added adapter/LoRA/SVD ones
    included (SVD's ``U``, ``S``, ``Vh`` are buffers, not parameters). Works on ``meta`` models.
    """
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total, (trainable / total if total else 0.0)


def parameter_table(sam: nn.Module):
    """A pandas DataFrame: total and trainable parameters per component (and the whole model)."""
    import pandas as pd

    rows = []
    for part in ("image_encoder", "prompt_encoder", "mask_decoder"):
        trainable, total, _ = trainable_parameters(getattr(sam, part))
        rows.append({"component": part, "total": total, "trainable": trainable})
    trainable, total, share = trainable_parameters(sam)
    rows.append({"component": "all", "total": total, "trainable": trainable})
    table = pd.DataFrame(rows).set_index("component")
    table["share"] = table["trainable"] / table["total"]
    return table


def trainable_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the trainable tensors, by parameter name, detached and copied to the CPU."""
    return {name: p.detach().to("cpu", copy=True) for name, p in model.named_parameters() if p.requires_grad}


def save_trainable(model: nn.Module, path: str | Path) -> Path:
    """Save the trainable tensors and the strategy (:func:`adaptation`) to ``path`` with ``torch.save``.

    A LoRA-rank-4 ViT-B file holds ~0.15 M values instead of SAM's 93.7 M. Returns the path.
    """
    record = adaptation(model)
    if record is None:
        raise ValueError(
            "This model has no strategy applied, so there is nothing specific to save; apply one of "
            f"{', '.join(STRATEGIES)} from utils.peft first (or torch.save(model.state_dict(), path))."
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "adaptation": record,
        "fingerprint": _fingerprint(model),
        "tensors": trainable_state_dict(model),
    }
    torch.save(payload, path)
    return path


def load_trainable(model: nn.Module, path: str | Path) -> nn.Module:
    """Load tensors saved by :func:`save_trainable` into ``model`` (in place) and return it.

    A fresh model gets the saved strategy applied first (same options); an adapted model must use the
    same strategy and options. The file is read with ``weights_only=True``. Raises ``ValueError`` for
    another format, a different strategy, missing or unexpected tensor names, shape mismatches, or
    frozen base weights that differ from those the adapter was trained on.
    """
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(
            f"Could not read {path} as a plain tensor file (weights_only=True): {exc.__class__.__name__}: {exc}"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} was not written by utils.peft.save_trainable (missing format tag {FORMAT!r}).")
    saved = payload["adaptation"]
    current = adaptation(model)
    if current is None:
        STRATEGIES[saved["strategy"]](model, **saved["options"])
    elif _comparable(current) != _comparable(saved):
        raise ValueError(
            f"{path} holds a {saved['strategy']!r} adaptation with options {saved['options']}, but this model "
            f"is adapted with {current['strategy']!r} {current['options']}. Load it into a fresh model instead."
        )
    if saved.get("merged") != adaptation(model).get("merged"):
        raise ValueError(f"{path} and this model differ in whether LoRA was merged; load before merge_lora().")
    tensors = payload["tensors"]
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    missing, unexpected = sorted(set(params) - set(tensors)), sorted(set(tensors) - set(params))
    if missing or unexpected:
        raise ValueError(
            f"{path} does not match this model: missing {len(missing)} tensor(s) {missing[:3]}, "
            f"unexpected {len(unexpected)} {unexpected[:3]}. Was it saved from another model (e.g. litemedsam "
            "vs sam_vit_b) or with other strategy options?"
        )
    wrong = [n for n in params if params[n].shape != tensors[n].shape]
    if wrong:
        raise ValueError(
            f"{path}: shapes differ for {wrong[:3]} (file {tuple(tensors[wrong[0]].shape)} vs model "
            f"{tuple(params[wrong[0]].shape)}); it was saved from a different architecture."
        )
    _check_fingerprint(model, payload.get("fingerprint"), path)
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(tensors[name].to(device=param.device, dtype=param.dtype))
    _refresh_caches(model)
    return model


def _comparable(record: dict[str, Any]) -> tuple:
    """Strategy and options, without the init seed (every seeded tensor is overwritten on load)."""
    options = {k: v for k, v in record["options"].items() if k != "seed"}
    return record["strategy"], options


def _refresh_caches(model: nn.Module) -> None:
    """TinyViT's attention caches its biases (``ab``) when put in eval mode; rebuild them from the loaded values."""
    for module in model.modules():
        if hasattr(module, "attention_biases") and hasattr(module, "ab") and not module.training:
            module.train(False)


def _fingerprint(model: nn.Module) -> float | None:
    """Sum of |w| over the frozen parameters: cheap evidence of which base weights an adapter belongs to."""
    frozen = [p for p in model.parameters() if not p.requires_grad]
    if not frozen or any(p.is_meta for p in frozen):
        return None
    with torch.no_grad():
        return float(sum(p.detach().double().abs().sum().item() for p in frozen))


def _check_fingerprint(model: nn.Module, saved: float | None, path: Path) -> None:
    here = _fingerprint(model)
    if saved is None or here is None:
        return
    if abs(here - saved) > 1e-4 * max(abs(saved), 1.0):
        raise ValueError(
            f"{path} was trained on different frozen base weights (fingerprint {saved:.6g} vs {here:.6g} "
            "here): load the same pretrained model (e.g. load_sam('litemedsam')) before load_trainable."
        )


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every :class:`LoRALinear` by a plain ``nn.Linear`` holding ``W + (alpha/r) B A`` (in place).

    The merged model is a plain SAM again (no extra matmuls at inference; its ``state_dict`` loads into
    an un-adapted model of the same architecture). Outputs match the unmerged model to float round-off.
    """
    record = adaptation(model)
    if record is None or record["strategy"] != "lora":
        raise ValueError("merge_lora needs a model adapted with utils.peft.lora(...).")
    if record["merged"]:
        return model
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LoRALinear):
                setattr(parent, name, child.merge())
    record["merged"] = True
    return model
