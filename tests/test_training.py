"""utils.training: the loss, prompts, both forward paths, learning, determinism, accumulation, metering."""

from __future__ import annotations

import copy
import json
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from monai.losses import DiceCELoss
from torch import nn

from utils import peft, training
from utils.datasets import Case
from utils.evaluate import evaluate
from utils.machine import to_jsonable
from utils.models import CachedPredictor, CoursePredictor, load_sam
from utils.phantoms import make_phantom
from utils.prompts import sample_prompt

from fakes import disk_case, load_tiny_sam


@pytest.fixture(scope="module")
def disks() -> list[Case]:
    return [disk_case(i) for i in range(4)]


def quiet_train(sam, train_cases, val_cases=(), **kwargs) -> training.TrainResult:
    kwargs.setdefault("progress", False)
    return training.train(sam, train_cases, list(val_cases), **kwargs)


# ------------------------------------------------------------------------------------ loss


def test_loss_equals_monai_dice_ce():
    generator = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(3, 1, 32, 32, generator=generator)
    target = (torch.rand(3, 1, 32, 32, generator=generator) > 0.6).float()
    target[2] = 0  # an empty mask
    monai_loss = DiceCELoss(sigmoid=True, squared_pred=True, reduction="mean")
    assert training.make_loss()(logits, target).item() == pytest.approx(monai_loss(logits, target).item(), abs=1e-6)


def test_loss_is_small_for_a_confident_correct_prediction():
    target = torch.zeros(1, 1, 16, 16)
    target[..., 4:12, 4:12] = 1
    assert training.make_loss()(20 * (2 * target - 1), target).item() < 1e-3
    assert training.make_loss()(-20 * (2 * target - 1), target).item() > 10


# ------------------------------------------------------------------------------------ forward paths


def test_training_forward_matches_the_predictor_on_litemedsam():
    """Same preprocessing as SamPredictor (LiteMedSAM's min-max stretch, resize, padding) and same decoding."""
    sam = load_sam("litemedsam", device="cpu")
    phantom = make_phantom("ct", seed=0, size=200)
    centre = int(np.nonzero(phantom.mask)[1].mean())
    left = min(max(centre - 75, 0), 50)
    # 200 x 150: resized to 256 x 192 and padded on the right, as sam.preprocess pads
    case = Case(image=phantom.image[:, left : left + 150], mask=phantom.mask[:, left : left + 150], name="crop",
                modality="ct")  # fmt: skip
    seen = []
    sam.image_encoder.register_forward_pre_hook(lambda _module, inputs: seen.append(inputs[0].clone()))
    predictor = CoursePredictor(sam)
    predictor.set_image(case.image)
    sample = training._prepare(case, predictor, 256, torch.device("cpu"))
    assert torch.equal(sam.preprocess(sample.image[None]), seen[0])  # the encoder path feeds the same tensor
    box_prompt = sample_prompt(case.mask, np.random.default_rng(0), "box")
    point_prompt = sample_prompt(case.mask, np.random.default_rng(0), "points", n_points=2)
    embedding = predictor.get_image_embedding().clone()
    with torch.no_grad():
        logits = training._forward(sam, [sample, sample], [box_prompt, point_prompt], predictor, 256, [embedding] * 2)
    for got, prompt in zip(logits, (box_prompt, point_prompt)):
        _, _, low_res = predictor.predict(**prompt, multimask_output=False)
        assert np.abs(got.numpy() - low_res).max() < 1e-4
    # the target lies in the same padded frame: the mask resized like the image, zero in the padding
    assert sample.target.shape == (1, 256, 256)
    assert sample.target[0, :, 192:].sum() == 0
    expected_area = case.mask.sum() * (256 / 200) ** 2
    assert abs(sample.target.sum().item() - expected_area) < 0.03 * expected_area


def test_encoder_path_matches_the_predictor_on_tiny_sam(disks):
    sam = load_tiny_sam()
    predictor = CoursePredictor(sam)
    predictor.set_image(disks[0].image)
    sample = training._prepare(disks[0], predictor, 64, torch.device("cpu"))  # 64: tiny_sam's low-res size
    prompt = sample_prompt(disks[0].mask, np.random.default_rng(0), "box")
    with torch.no_grad():
        logits = training._forward(sam, [sample], [prompt], predictor, 64)  # runs the encoder itself
    _, _, low_res = predictor.predict(**prompt, multimask_output=False)
    assert np.abs(logits[0].numpy() - low_res).max() < 1e-5


def test_precompute_embeddings_runs_the_encoder_once_per_image(disks):
    sam = load_tiny_sam()
    predictor = CachedPredictor(CoursePredictor(sam))
    embeddings = training.precompute_embeddings(sam, disks[:2], progress=False, predictor=predictor)
    assert predictor.encoder_calls == 2 and embeddings[0].shape == (1, 64, 16, 16)
    plain = CoursePredictor(sam)
    plain.set_image(disks[1].image)
    assert torch.equal(plain.get_image_embedding(), embeddings[1])
    predictor.set_image(disks[0].image)  # cached: no new encoder call
    assert predictor.encoder_calls == 2
    assert torch.equal(predictor.get_image_embedding(), embeddings[0])


def test_training_scores_output_zero_the_output_it_trains_for_every_prompt(disks):
    """train() optimises multimask_output=False; its validation must not pick among untrained outputs 1-3."""
    table = training._evaluate(load_tiny_sam(), disks[:2], ("point_center", "box"), 0, None)
    assert not table["multimask"].any() and set(table["choice"]) == {"single"}
    assert table.attrs["trained_multimask"] is False


def test_evaluate_dice_is_the_evaluate_box_mean(disks):
    sam = load_tiny_sam()
    table = evaluate(CoursePredictor(sam), disks[:2], modes=("box",), progress=False)
    assert training.evaluate_dice(sam, disks[:2]) == pytest.approx(table["dice"].mean())


# ------------------------------------------------------------------------------------------ training


def test_decoder_only_learns_a_trivial_task_embedding_each_image_once(disks):
    sam = load_tiny_sam()
    result = quiet_train(sam, disks[:2], disks[2:], strategy_name="decoder_only", steps=15, lr=3e-3, eval_every=5,
                         box_jitter=0.0)  # fmt: skip
    losses = result.history["loss"].dropna().to_numpy()
    assert len(losses) == 15
    assert losses[-3:].mean() < 0.5 * losses[:3].mean()  # measured here: 1.24 -> ~0.05
    assert result.dice_after > result.dice_before + 0.3  # measured here: 0.26 -> ~0.95
    assert result.encoder_images == 4  # 2 training + 2 validation images, each embedded once
    assert list(result.history["step"]) == list(range(16))
    assert result.history["val_dice"].notna().sum() == 4  # steps 0, 5, 10, 15
    assert not sam.training  # left in eval mode


def test_same_seed_gives_the_same_loss_history(disks):
    runs = [quiet_train(peft.lora(load_tiny_sam(), rank=2), disks[:3], steps=3, lr=1e-2, seed=s) for s in (7, 7, 8)]
    first, second, other = (r.history["loss"].to_numpy() for r in runs)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first[1:], other[1:])


def test_accumulation_equals_a_bigger_batch(disks):
    kwargs = {"strategy_name": "decoder_only", "steps": 3, "lr": 1e-3, "seed": 1}
    big = quiet_train(load_tiny_sam(), disks, batch_size=2, accumulate=1, **kwargs).history["loss"]
    accumulated = quiet_train(load_tiny_sam(), disks, batch_size=1, accumulate=2, **kwargs).history["loss"]
    np.testing.assert_allclose(accumulated.to_numpy()[1:], big.to_numpy()[1:], rtol=1e-4)


def test_lora_training_changes_only_lora_tensors(disks):
    sam = peft.lora(load_tiny_sam())
    before = {n: p.detach().clone() for n, p in sam.named_parameters()}
    result = quiet_train(sam, disks[:2], disks[2:3], strategy_name="lora", steps=2, lr=1e-2, eval_every=0)
    changed = {n for n, p in sam.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.endswith("lora_B") or n.endswith("lora_A") for n in changed)
    assert any(n.endswith("lora_B") for n in changed)
    assert result.encoder_images == 2 * 2 + 2 * 1  # 2 steps x batch 2, plus validation before and after
    assert result.trainable == peft.trainable_parameters(sam)[0] == 2 * 4 * (64 + 192)


def test_lora_step_on_litemedsam_keeps_batchnorm_statistics():
    """A real-shape step through TinyViT; its BatchNorm running statistics must not move (train mode would)."""
    sam = load_sam("litemedsam", device="cpu")
    stats = {n: b.clone() for n, b in sam.named_buffers() if "running_" in n}
    case = make_phantom("ultrasound", seed=0, size=256)
    result = quiet_train(sam, [case], strategy_name="lora", steps=1, batch_size=1, lr=1e-3, eval_every=None)
    assert stats and all(torch.equal(b, stats[n]) for n, b in sam.named_buffers() if n in stats)
    lora_b = [p for n, p in sam.named_parameters() if n.endswith("lora_B")]
    assert len(lora_b) == 10 and all(p.abs().sum() > 0 for p in lora_b)  # every block got a gradient
    assert math.isfinite(result.history["loss"].iloc[-1])


def test_train_mode_leaves_batchnorm_in_eval():
    sam = peft.full(load_sam("litemedsam", device="cpu"))
    training._train_mode(sam)
    norms = [m for m in sam.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and not any(m.training for m in norms)
    assert sam.training and sam.image_encoder.layers[1].blocks[0].attn.training


def test_result_metering_and_summary(disks):
    sam = load_tiny_sam()
    result = quiet_train(sam, disks[:2], disks[2:3], strategy_name="lora", strategy_options={"rank": 2}, steps=2,
                         batch_size=1, eval_every=1)  # fmt: skip
    assert result.memory_metric == "cpu_rss" and result.peak_mem_mb >= result.rss_before_mb > 0
    assert result.extra_mem_mb == pytest.approx(result.peak_mem_mb - result.rss_before_mb)
    assert result.step_time_s > 0 and result.amp is False and result.device == "cpu"
    assert peft.adaptation(sam)["options"]["rank"] == 2
    summary = result.summary()
    assert summary["strategy"] == "lora" and summary["trainable"] == 2 * 2 * (64 + 192)
    json.dumps(to_jsonable(summary))
    assert {"step", "loss", "val_dice", "val_box"} <= set(result.history.columns)
    table = training.results_table({"lora r2": result})
    assert table.loc["lora r2", "trainable"] == summary["trainable"]
    assert table.loc["lora r2", "dice_after"] == result.history["val_dice"].iloc[-1]
    fig = training.plot_learning_curves([result])
    assert len(fig.axes) == 2 and len(fig.axes[1].lines) == 1
    plt.close(fig)


# ------------------------------------------------------------------------------ activation checkpointing


def _loss_and_grads(sam, case, checkpointed: bool):
    """One training forward and backward through the encoder (train mode); the loss and every gradient."""
    predictor = CoursePredictor(sam)
    sample = training._prepare(case, predictor, 64, torch.device("cpu"))
    prompt = sample_prompt(case.mask, np.random.default_rng(0), "box")
    training._train_mode(sam)
    calls = []
    # a pre-hook: the recomputation stops inside the MLP, once the last activation needed is back
    hooks = [b.mlp.register_forward_pre_hook(lambda *_: calls.append(1)) for b in training.encoder_blocks(sam)]
    with training.encoder_checkpointing(sam, checkpointed):
        loss = training.make_loss()(training._forward(sam, [sample], [prompt], predictor, 64), sample.target[None])
        loss.backward()
    for hook in hooks:
        hook.remove()
    grads = {n: p.grad.clone() for n, p in sam.named_parameters() if p.grad is not None}  # not the IoU head
    return loss.item(), grads, len(calls)


@pytest.mark.parametrize("strategy", ["adapter", "lora", "svd", "full"])
def test_checkpointing_gives_the_same_loss_and_gradients(disks, strategy):
    sam = peft.STRATEGIES[strategy](load_tiny_sam())
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # off the identity start (zero LoRA B, adapter up-projection): every gradient non-zero
        for p in (p for p in sam.parameters() if p.requires_grad):
            p.add_(0.02 * torch.randn(p.shape, generator=generator))
    twin = copy.deepcopy(sam)
    loss, grads, plain_calls = _loss_and_grads(sam, disks[0], checkpointed=False)
    loss_ckpt, grads_ckpt, ckpt_calls = _loss_and_grads(twin, disks[0], checkpointed=True)
    assert (plain_calls, ckpt_calls) == (2, 4)  # two blocks; checkpointed, each runs again in the backward pass
    assert loss_ckpt == pytest.approx(loss, abs=1e-6)
    encoder_grads = [n for n in grads if n.startswith("image_encoder.blocks")]
    assert set(grads_ckpt) == set(grads) and encoder_grads
    assert all(grads[n].abs().max() > 0 for n in encoder_grads)
    for name, grad in grads.items():
        torch.testing.assert_close(grads_ckpt[name], grad, rtol=1e-5, atol=1e-6, msg=name)
    assert not any("forward" in vars(b) for b in training.encoder_blocks(twin))  # restored on exit


def test_checkpointing_finds_wrapped_blocks_and_restores_them_after_an_error():
    sam = peft.adapter(load_sam("litemedsam", device="cpu"))
    blocks = training.encoder_blocks(sam)
    assert len(blocks) == 10 and all(type(b).__name__ == "TinyViTBlock" for b in blocks)
    with pytest.raises(RuntimeError, match="inside"):
        with training.encoder_checkpointing(sam) as wrapped:
            assert wrapped == blocks and all("forward" in vars(b) for b in blocks)
            with pytest.raises(ValueError, match="already checkpointed"):
                with training.encoder_checkpointing(sam):
                    pass
            raise RuntimeError("inside")
    assert not any("forward" in vars(b) for b in blocks)
    with pytest.raises(ValueError, match="Expected a segment_anything Sam"):
        training.encoder_blocks(nn.Module())


def test_train_with_encoder_checkpointing_follows_the_same_path(disks):
    kwargs = {"strategy_name": "lora", "steps": 3, "lr": 1e-2, "seed": 3, "batch_size": 1, "accumulate": 2}
    plain_model, ckpt_model = load_tiny_sam(), load_tiny_sam()
    plain = quiet_train(plain_model, disks[:3], **kwargs)
    ckpt = quiet_train(ckpt_model, disks[:3], checkpoint_encoder=True, **kwargs)
    np.testing.assert_allclose(ckpt.history["loss"].to_numpy()[1:], plain.history["loss"].to_numpy()[1:], rtol=1e-5)
    for (name, a), b in zip(plain_model.named_parameters(), ckpt_model.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6, msg=name)
    assert ckpt.options["checkpoint_encoder"] and not plain.options["checkpoint_encoder"]
    assert not any("forward" in vars(b) for b in training.encoder_blocks(ckpt_model))
    frozen = quiet_train(load_tiny_sam(), disks[:2], strategy_name="decoder_only", steps=1, checkpoint_encoder=True)
    assert frozen.options["checkpoint_encoder"] is False  # nothing to checkpoint: the encoder is frozen
    with pytest.raises(ValueError, match="checkpoint_encoder"):
        quiet_train(load_tiny_sam(), disks, strategy_name="lora", checkpoint_encoder="yes")


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_each_step_uses_the_schedules_learning_rate_as_torch_computes_it(disks, schedule):
    result = quiet_train(load_tiny_sam(), disks[:2], strategy_name="decoder_only", steps=6, lr=1e-3, schedule=schedule)
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1e-3)
    reference = {"constant": torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0),
                 "cosine": torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=6, eta_min=0.0)}[schedule]
    expected = []
    for _ in range(6):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        reference.step()
    np.testing.assert_allclose(result.history["lr"].to_numpy()[1:], expected, rtol=1e-12)
    assert result.options["schedule"] == schedule
    if schedule == "cosine":
        assert expected[0] == 1e-3 and expected[-1] < 0.07e-3  # the last step moves little
        # 05: "the last quarter's steps are small (below 15% of the starting rate)", at 05's offline 64 steps
        assert max(training.SCHEDULES["cosine"](64)(step) for step in range(48, 64)) < 0.15


def test_bad_input_raises_value_errors(disks):
    with pytest.raises(ValueError, match="schedule must be one of constant, cosine"):
        quiet_train(load_tiny_sam(), disks, strategy_name="lora", schedule="linear")
    with pytest.raises(ValueError, match="steps"):
        quiet_train(load_tiny_sam(), disks, strategy_name="lora", steps=0)
    with pytest.raises(ValueError, match="lr"):
        quiet_train(load_tiny_sam(), disks, strategy_name="lora", lr=-1.0)
    with pytest.raises(ValueError, match="empty"):
        quiet_train(load_tiny_sam(), [], strategy_name="lora")
    with pytest.raises(ValueError, match="Unknown strategy"):
        quiet_train(load_tiny_sam(), disks, strategy_name="prefix_tuning")
    with pytest.raises(ValueError, match="no strategy"):
        quiet_train(load_tiny_sam(), disks)
    with pytest.raises(ValueError, match="already adapted"):
        quiet_train(peft.lora(load_tiny_sam()), disks, strategy_name="svd")
    with pytest.raises(ValueError, match="prompt"):
        quiet_train(load_tiny_sam(), disks, strategy_name="lora", prompt="scribble")
    empty = copy.copy(disks[0])
    empty.mask = np.zeros_like(empty.mask)
    with pytest.raises(ValueError, match="empty mask"):
        quiet_train(load_tiny_sam(), [empty], strategy_name="lora")


# ------------------------------------------------------------------------------ frozen-feature caching


@pytest.mark.parametrize("strategy", ["lora", "full"])
def test_cached_head_trains_exactly_like_the_whole_encoder(strategy, disks, monkeypatch):
    """Same seed, same model: the cached path gives the losses, held-out Dice and weights of running every block."""
    options = dict(strategy_name=strategy, strategy_options={"last_blocks": 1}, steps=4, lr=1e-2, batch_size=2,
                   eval_every=2, seed=0)  # fmt: skip
    cached_sam = load_tiny_sam()
    cached = quiet_train(cached_sam, disks[:3], disks[3:], **options)
    assert cached.options["cached_head"] == {"last_blocks": 1, "images": 4}  # 3 training + 1 held-out image, once
    monkeypatch.setattr(training, "_cached_blocks", lambda sam: None)  # every step runs every block
    whole_sam = load_tiny_sam()
    whole = quiet_train(whole_sam, disks[:3], disks[3:], **options)
    assert "cached_head" not in whole.options
    np.testing.assert_allclose(cached.history["loss"].dropna(), whole.history["loss"].dropna(), rtol=1e-5)
    np.testing.assert_allclose(cached.history["val_dice"].dropna(), whole.history["val_dice"].dropna(), atol=1e-6)
    for (name, a), (_, b) in zip(cached_sam.named_parameters(), whole_sam.named_parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=name)
    assert "forward" not in vars(cached_sam.image_encoder)  # the encoder is whole again afterwards
    assert sorted(cached.val_tables) == [0, 2, 4]


def test_cached_head_refuses_a_trainable_head():
    sam = peft.lora(load_tiny_sam())  # every block adapted: the first block's activations change
    with pytest.raises(ValueError, match="cannot be cached"):
        with training.cached_encoder_head(sam, 1):
            pass


# ------------------------------------------------------------------------------ notebook 05's teaching step


def _teaching_cells(stem: str = "05_adapting_sam") -> list[str]:
    import nbformat

    from utils.tools import harness

    path = next(p for p in harness.find_notebooks() if p.stem == stem)
    return [c.source for c in nbformat.read(path, as_version=4).cells if "teaching" in c.metadata.get("tags", [])]


@pytest.mark.filterwarnings("ignore::utils.models.MeaninglessModelWarning")
def test_notebook_05s_training_step_by_hand_is_one_step_of_train():
    """The cells notebook 05 shows as 'one training step' give train()'s loss and weights (same case, seed, lr)."""
    from types import SimpleNamespace

    from utils import models, prompts

    case = disk_case(0)
    cells = [c for c in _teaching_cells() if "step_model" in c or "step_predictor" in c]  # not the LoRA layer's
    assert len(cells) == 2 and "backward()" in cells[1]
    namespace = {"np": np, "torch": torch, "peft": peft, "models": models, "training": training, "prompts": prompts,
                 "MODEL": "tiny_sam", "run": SimpleNamespace(device=torch.device("cpu")), "SEED": 3,
                 "split": SimpleNamespace(train=[case]), "BOX_JITTER": 0.1, "LR": {"decoder_only": 1e-2}}  # fmt: skip
    for source in cells:
        exec(compile(source, "05 teaching", "exec"), namespace)
    reference = peft.decoder_only(load_sam("tiny_sam"))
    result = quiet_train(reference, [case], strategy_name=None, steps=1, lr=1e-2, batch_size=1, seed=3,
                         box_jitter=0.1, eval_every=None)  # fmt: skip
    assert result.history["loss"].iloc[-1] == pytest.approx(namespace["loss"].item(), rel=1e-6)
    for (name, mine), (_, theirs) in zip(namespace["step_model"].named_parameters(), reference.named_parameters()):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-7, msg=name)
    assert not torch.equal(namespace["step_model"].mask_decoder.output_upscaling[0].weight,
                           load_sam("tiny_sam").mask_decoder.output_upscaling[0].weight)  # fmt: skip  # it did move


def test_decoder_only_embeds_through_a_shared_head_cache_with_the_same_result(disks):
    options = dict(strategy_name="decoder_only", steps=3, lr=1e-2, batch_size=2, eval_every=None, seed=0)
    heads = training.HeadCache(last_blocks=1)
    shared = quiet_train(load_tiny_sam(), disks[:3], disks[3:], head_cache=heads, **options)
    plain = quiet_train(load_tiny_sam(), disks[:3], disks[3:], **options)
    assert shared.options["cached_head"] == {"last_blocks": 1, "images": 4} and len(heads) == 4
    np.testing.assert_allclose(shared.history["loss"].dropna(), plain.history["loss"].dropna(), rtol=1e-5)
    assert shared.dice_after == pytest.approx(plain.dice_after, abs=1e-6)
    again = quiet_train(load_tiny_sam(), disks[:3], disks[3:], head_cache=heads, **options)
    assert again.options["cached_head"]["images"] == 0  # every head was already there
    with pytest.raises(ValueError, match="another cut"):
        quiet_train(load_tiny_sam(), disks[:3], strategy_name="lora", strategy_options={"last_blocks": 2},
                    steps=1, head_cache=heads)  # fmt: skip
