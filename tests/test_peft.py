"""utils.peft: which parameters each strategy trains, identity at init, LoRA vs HF peft, merge, save/load."""

from __future__ import annotations

import copy

import peft as hf_peft  # Hugging Face's peft: the reference our LoRA must match
import pytest
import torch
from segment_anything import sam_model_registry
from segment_anything.modeling.image_encoder import Block
from torch import nn

from utils import peft
from utils.models import _build_tiny_sam, load_sam

from fakes import load_tiny_sam

ADAPTING = ("adapter", "lora", "svd")


@pytest.fixture(scope="module")
def litemedsam() -> nn.Module:
    return load_sam("litemedsam", device="cpu")


@pytest.fixture(scope="module")
def lite_tokens(litemedsam) -> torch.Tensor:
    """TinyViT's conv-stage output for one random image: no strategy touches that stage (tested by name)."""
    image = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return litemedsam.image_encoder.layers[0](litemedsam.image_encoder.patch_embed(image))


def tinyvit_tail(sam: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """The rest of TinyViT.forward_features: every transformer block (layers[1:]) and the neck."""
    encoder = sam.image_encoder
    with torch.no_grad():
        for layer in encoder.layers[1:]:
            tokens = layer(tokens)
        grid = tokens.view(len(tokens), 64, 64, -1).permute(0, 3, 1, 2)
        return encoder.neck(grid)


@pytest.fixture(scope="module")
def lite_reference(litemedsam, lite_tokens) -> torch.Tensor:
    return tinyvit_tail(litemedsam, lite_tokens)


def trainable_names(model: nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def expected_names(model: nn.Module, strategy: str, train_decoder: bool = False) -> set[str]:
    """What the strategy should train, derived from parameter names alone."""
    rules = {
        "decoder_only": lambda n: n.startswith("mask_decoder."),
        "full": lambda n: True,
        "adapter": lambda n: n.startswith("image_encoder.") and ".adapter." in n,
        "lora": lambda n: n.endswith((".lora_A", ".lora_B")),
        "svd": lambda n: n.endswith((".sv_scale", ".sv_shift")),
    }
    names = {n for n, _ in model.named_parameters() if rules[strategy](n)}
    if train_decoder:
        names |= {n for n, _ in model.named_parameters() if n.startswith("mask_decoder.")}
    return names


def decoder_logits(sam: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """Mask logits for a fixed box on ``image`` (the whole model: encoder, prompt encoder, decoder)."""
    with torch.no_grad():
        embedding = sam.image_encoder(image)
        sparse, dense = sam.prompt_encoder(points=None, boxes=torch.tensor([[40.0, 60.0, 180.0, 200.0]]), masks=None)
        logits, _ = sam.mask_decoder(embedding, sam.prompt_encoder.get_dense_pe(), sparse, dense, False)
    return logits


def randomise_trainable(model: nn.Module, seed: int = 1) -> None:
    """Move every trainable tensor away from its (identity) start, as training would."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn(p.shape, generator=generator))


# --------------------------------------------------------------------------------- trainable sets


@pytest.mark.parametrize("strategy", list(peft.STRATEGIES))
def test_tiny_sam_trains_exactly_the_intended_parameters(strategy):
    sam = peft.STRATEGIES[strategy](load_tiny_sam())
    assert trainable_names(sam) == expected_names(sam, strategy)
    assert trainable_names(sam)  # something trains
    assert peft.adaptation(sam)["strategy"] == strategy


@pytest.mark.parametrize("strategy", ADAPTING)
def test_train_decoder_adds_exactly_the_mask_decoder(strategy):
    sam = peft.STRATEGIES[strategy](load_tiny_sam(), train_decoder=True)
    assert trainable_names(sam) == expected_names(sam, strategy, train_decoder=True)


@pytest.mark.parametrize("strategy", list(peft.STRATEGIES))
def test_litemedsam_strategies_and_the_tinyvit_conv_stage(litemedsam, strategy):
    sam = peft.STRATEGIES[strategy](copy.deepcopy(litemedsam))
    names = trainable_names(sam)
    assert names == expected_names(sam, strategy)
    # TinyViT's conv stage: patch embedding, MBConv layer 0, downsamplers, local convs, neck
    conv_stage = {
        n
        for n, _ in sam.named_parameters()
        if n.startswith(("image_encoder.patch_embed.", "image_encoder.layers.0.", "image_encoder.neck."))
        or ".downsample." in n
        or ".local_conv." in n
    }
    assert len(conv_stage) > 50
    assert (conv_stage <= names) if strategy == "full" else not (conv_stage & names)
    assert len(peft.transformer_blocks(litemedsam)) == 10  # TinyViT layers[1:] hold 2 + 6 + 2 blocks
    kinds = [type(m) for m in sam.modules()]
    wrapped = {
        "lora": kinds.count(peft.LoRALinear),  # one qkv per block
        "svd": kinds.count(peft.SVDLinear),  # qkv, proj, fc1, fc2 per block
        "adapter": kinds.count(peft.SerialAdapter) + kinds.count(peft.ParallelAdapter),  # two per block
    }
    assert wrapped == {
        "lora": 10 if strategy == "lora" else 0,
        "svd": 40 if strategy == "svd" else 0,
        "adapter": 20 if strategy == "adapter" else 0,
    }
    # TinyViT's Mlp normalises inside; the parallel adapter must read those normalised tokens too
    assert all(m.normalises_inside for m in sam.modules() if isinstance(m, peft.ParallelAdapter))


def test_vit_b_shares_on_meta():
    shares = {}
    for strategy in peft.STRATEGIES:
        with torch.device("meta"):
            sam = sam_model_registry["vit_b"]()
        peft.STRATEGIES[strategy](sam)
        trainable, total, share = peft.trainable_parameters(sam)
        assert trainable_names(sam) == expected_names(sam, strategy)
        shares[strategy] = (trainable, total, share)
    assert shares["full"][:2] == (93_735_472, 93_735_472)  # SAM ViT-B, as published (design §8)
    assert shares["decoder_only"][0] == 4_058_340  # mask decoder, as published
    for strategy in ADAPTING:
        assert 0 < shares[strategy][2] < 0.05, (strategy, shares[strategy])
    assert shares["lora"][0] == 12 * 4 * (768 + 3 * 768)  # rank 4 on 12 qkv layers (768 -> 2304)
    assert shares["svd"][0] == 12 * 4 * 2 * 768  # scale + shift per singular value, 4 Linears per block
    hidden = 96  # 0.125 x 768
    assert shares["adapter"][0] == 12 * 2 * (768 * hidden + hidden + hidden * 768 + 768)


def test_parameter_table_sums_to_the_model():
    sam = peft.lora(load_tiny_sam())
    table = peft.parameter_table(sam)
    trainable, total, share = peft.trainable_parameters(sam)
    assert table.loc["all", "total"] == total == table["total"].drop("all").sum()
    assert table.loc["image_encoder", "trainable"] == trainable
    assert table.loc["all", "share"] == pytest.approx(share)


# ------------------------------------------------------------------------------ identity at init


@pytest.mark.parametrize("strategy", list(peft.STRATEGIES))
def test_tiny_sam_adapted_outputs_equal_the_base_model_bit_for_bit(strategy):
    image = torch.randn(2, 3, 256, 256, generator=torch.Generator().manual_seed(3))
    base = load_tiny_sam()
    adapted = peft.STRATEGIES[strategy](load_tiny_sam())
    assert torch.equal(decoder_logits(adapted, image[:1]), decoder_logits(base, image[:1]))
    with torch.no_grad():
        assert torch.equal(adapted.image_encoder(image), base.image_encoder(image))


@pytest.mark.parametrize("strategy", ADAPTING)
def test_litemedsam_adapted_encoder_equals_the_base(litemedsam, lite_tokens, lite_reference, strategy):
    sam = peft.STRATEGIES[strategy](copy.deepcopy(litemedsam)).eval()
    assert torch.equal(tinyvit_tail(sam, lite_tokens), lite_reference)


def test_identity_on_a_vit_b_sized_block():
    torch.manual_seed(0)
    block = Block(dim=768, num_heads=12, use_rel_pos=True, window_size=14, input_size=(64, 64)).eval()
    tokens = torch.randn(1, 14, 14, 768)
    with torch.no_grad():
        reference = block(tokens)
        adapted = copy.deepcopy(block)
        adapted.attn.qkv = peft.LoRALinear(adapted.attn.qkv, rank=4)
        adapted.attn = peft.SerialAdapter(adapted.attn, peft.Adapter(768, 96))
        adapted.mlp = peft.ParallelAdapter(adapted.mlp, peft.Adapter(768, 96))
        assert torch.equal(adapted(tokens), reference)


# ------------------------------------------------------------------------------------- the modules


def test_svd_linear_applies_scale_and_shift_to_the_singular_values():
    torch.manual_seed(0)
    base = nn.Linear(12, 20)
    layer = peft.SVDLinear(base)
    assert layer.sv_scale.shape == layer.sv_shift.shape == (12,)  # min(out, in) singular values
    with torch.no_grad():
        layer.sv_scale.uniform_(0.5, 1.5)
        layer.sv_shift.uniform_(-0.5, 0.2)
    u, s, vh = torch.linalg.svd(base.weight.detach(), full_matrices=False)
    expected = u @ torch.diag(torch.relu(s * layer.sv_scale + layer.sv_shift)) @ vh  # S-SAM's W'
    x = torch.randn(5, 12)
    with torch.no_grad():
        assert torch.allclose(layer(x), x @ expected.T + base.bias, atol=1e-5)
        assert torch.allclose(layer.merge()(x), layer(x), atol=1e-5)


def test_adapter_starts_at_zero_and_can_move():
    adapter = peft.Adapter(8, 2)
    x = torch.randn(3, 8)
    assert torch.equal(adapter(x), torch.zeros(3, 8))
    randomise_trainable(adapter)
    assert adapter(x).abs().sum() > 0


def test_lora_matches_hf_peft_on_the_same_weights():
    base = load_tiny_sam()
    ours = peft.lora(copy.deepcopy(base), rank=4, alpha=8.0)
    randomise_trainable(ours)  # B != 0, so the update matters
    config = hf_peft.LoraConfig(r=4, lora_alpha=8, target_modules=["qkv"], lora_dropout=0.0)
    theirs = hf_peft.inject_adapter_in_model(config, copy.deepcopy(base.image_encoder))
    with torch.no_grad():
        for name, module in ours.image_encoder.named_modules():
            if isinstance(module, peft.LoRALinear):
                twin = theirs.get_submodule(name)
                twin.lora_A["default"].weight.copy_(module.lora_A)
                twin.lora_B["default"].weight.copy_(module.lora_B)
                assert twin.scaling["default"] == module.scaling == 2.0
        image = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(5))
        ours_out, theirs_out = ours.image_encoder(image), theirs(image)
    assert not torch.allclose(ours_out, base.image_encoder(image), atol=1e-4)  # the update changed something
    assert torch.allclose(ours_out, theirs_out, atol=1e-6)


def test_notebook_05s_lora_layer_by_hand_is_lora_linear_and_its_merge():
    """The cell notebook 05 shows as 'what one LoRA layer computes' gives LoRALinear's output and merge's."""
    import nbformat

    from utils.tools import harness

    path = next(p for p in harness.find_notebooks() if p.stem == "05_adapting_sam")
    (cell,) = [c.source for c in nbformat.read(path, as_version=4).cells
               if "teaching" in c.metadata.get("tags", []) and "LoRALinear" in c.source]  # fmt: skip
    assert len(cell.splitlines()) <= 15
    trained = peft.lora(load_tiny_sam(), rank=4, alpha=8.0)
    randomise_trainable(trained)  # B != 0, as after training
    namespace = {"torch": torch, "peft": peft, "SEED": 3, "trained": trained}
    exec(compile(cell, "05 LoRA by hand", "exec"), namespace)
    layer, x = namespace["layer"], namespace["x"]
    with torch.no_grad():
        torch.testing.assert_close(namespace["by_hand"], layer(x), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(namespace["merged"], layer.merge()(x), rtol=1e-5, atol=1e-6)
        assert namespace["low_rank"].abs().max() > 1e-3  # the update is there to be checked
    empty = {"torch": torch, "peft": peft, "SEED": 3, "trained": None}
    exec(compile(cell, "05 LoRA by hand", "exec"), empty)  # no LoRA model: it says so instead
    assert empty["layer"] is None


# ------------------------------------------------------------------------------------------- merge


def test_merged_lora_matches_unmerged_and_is_a_plain_sam(litemedsam):
    sam = peft.lora(copy.deepcopy(litemedsam), rank=4)
    randomise_trainable(sam)
    sam.eval()
    last_stage = sam.image_encoder.layers[3]  # two TinyViT blocks at width 320 on the 64 x 64 grid
    tokens = torch.randn(1, 64 * 64, 320, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        unmerged = last_stage(tokens)
        peft.merge_lora(sam)
        merged = last_stage(tokens)
    assert not any(isinstance(m, peft.LoRALinear) for m in sam.modules())
    assert (unmerged - merged).abs().max() < 1e-5
    fresh = load_sam("litemedsam", device="cpu")
    fresh.load_state_dict(sam.state_dict(), strict=True)  # merged weights fit the plain architecture
    assert peft.adaptation(sam)["merged"] is True


def test_merged_tiny_sam_logits_match():
    sam = peft.lora(load_tiny_sam(), rank=2, targets=("qkv", "proj", "mlp"))
    randomise_trainable(sam)
    image = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(2))
    before = decoder_logits(sam, image)
    after = decoder_logits(peft.merge_lora(sam), image)
    assert (before - after).abs().max() < 1e-5


# --------------------------------------------------------------------------------------- save/load


@pytest.mark.parametrize("strategy", list(peft.STRATEGIES))
def test_saved_and_reloaded_tensors_give_identical_outputs(tmp_path, strategy):
    sam = peft.STRATEGIES[strategy](load_tiny_sam())
    randomise_trainable(sam)
    path = peft.save_trainable(sam, tmp_path / f"{strategy}.pt")
    restored = peft.load_trainable(load_tiny_sam(), path)  # a fresh model: the saved strategy is applied first
    assert peft.adaptation(restored) == peft.adaptation(sam)
    image = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(4))
    assert torch.equal(decoder_logits(restored, image), decoder_logits(sam, image))
    saved = torch.load(path, weights_only=True)
    assert set(saved["tensors"]) == trainable_names(sam)  # only the trained tensors


def test_saved_adapter_file_is_small_and_loads_into_an_adapted_model(tmp_path):
    sam = peft.adapter(load_tiny_sam(), ratio=0.25)
    randomise_trainable(sam)
    path = peft.save_trainable(sam, tmp_path / "adapter.pt")
    full_size = sum(p.numel() for p in sam.parameters()) * 4
    assert path.stat().st_size < 0.3 * full_size
    target = peft.adapter(load_tiny_sam(), ratio=0.25)
    peft.load_trainable(target, path)
    for (name, a), (_, b) in zip(sam.named_parameters(), target.named_parameters()):
        assert torch.equal(a, b), name


def test_loading_full_litemedsam_refreshes_tinyvit_attention_caches(tmp_path, litemedsam):
    sam = peft.full(copy.deepcopy(litemedsam))
    randomise_trainable(sam)
    path = peft.save_trainable(sam, tmp_path / "full.pt")
    restored = peft.load_trainable(copy.deepcopy(litemedsam).eval(), path)
    attentions = [m for m in restored.modules() if hasattr(m, "attention_biases")]
    assert len(attentions) == 10
    for m in attentions:  # eval-mode TinyViT attention reads the cached ``ab``, not attention_biases
        assert torch.equal(m.ab, m.attention_biases[:, m.attention_bias_idxs])


def test_load_ignores_the_init_seed(tmp_path):
    sam = peft.lora(load_tiny_sam(), seed=1)
    randomise_trainable(sam)
    path = peft.save_trainable(sam, tmp_path / "lora.pt")
    restored = peft.load_trainable(peft.lora(load_tiny_sam(), seed=2), path)
    assert all(torch.equal(a, b) for a, b in zip(sam.parameters(), restored.parameters()))


def test_load_refuses_mismatches(tmp_path, litemedsam):
    sam = peft.adapter(load_tiny_sam())
    path = peft.save_trainable(sam, tmp_path / "adapter.pt")
    with pytest.raises(ValueError, match="already adapted|adapted with 'lora'"):
        peft.load_trainable(peft.lora(load_tiny_sam()), path)
    with pytest.raises(ValueError, match="options"):
        peft.load_trainable(peft.adapter(load_tiny_sam(), ratio=0.5), path)
    with pytest.raises(ValueError, match="missing|shapes"):
        peft.load_trainable(copy.deepcopy(litemedsam), path)  # another architecture
    other_weights = _build_tiny_sam(None, seed=1)
    with pytest.raises(ValueError, match="different frozen base weights"):
        peft.load_trainable(other_weights, path)
    not_ours = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(3)}, not_ours)
    with pytest.raises(ValueError, match="save_trainable"):
        peft.load_trainable(load_tiny_sam(), not_ours)
    with pytest.raises(ValueError, match="no strategy"):
        peft.save_trainable(load_tiny_sam(), tmp_path / "none.pt")


# ------------------------------------------------------------------------------------- bad input


def test_bad_input_raises_value_errors():
    with pytest.raises(ValueError, match="already adapted"):
        peft.svd(peft.lora(load_tiny_sam()))
    with pytest.raises(ValueError, match="rank"):
        peft.lora(load_tiny_sam(), rank=0)
    with pytest.raises(ValueError, match="targets"):
        peft.lora(load_tiny_sam(), targets=("q_proj",))
    with pytest.raises(ValueError, match="ratio"):
        peft.adapter(load_tiny_sam(), ratio=0)
    with pytest.raises(ValueError, match="Sam"):
        peft.lora(nn.Linear(3, 3))
    with pytest.raises(ValueError, match="merge_lora"):
        peft.merge_lora(peft.adapter(load_tiny_sam()))


def test_lora_and_adapter_initialisation_is_seeded():
    a = peft.lora(load_tiny_sam(), seed=3)
    torch.manual_seed(123)  # the global RNG must not matter
    b = peft.lora(load_tiny_sam(), seed=3)
    c = peft.lora(load_tiny_sam(), seed=4)
    weights = [dict(m.named_parameters()) for m in (a, b, c)]
    name = next(n for n in weights[0] if n.endswith("lora_A"))
    assert torch.equal(weights[0][name], weights[1][name])
    assert not torch.equal(weights[0][name], weights[2][name])


# ------------------------------------------------------------------------------ the last K blocks


@pytest.mark.parametrize("name", ["tiny_sam", "litemedsam"])
def test_encoder_stages_run_in_order_are_the_encoder(name, litemedsam):
    sam = load_tiny_sam() if name == "tiny_sam" else litemedsam
    side = sam.image_encoder.img_size
    x = sam.preprocess(torch.randint(0, 255, (1, 3, side, side), generator=torch.Generator().manual_seed(0)).float())
    stages = peft.encoder_stages(sam)
    assert [s.kind for s in stages].count("block") == len(peft.transformer_blocks(sam))
    assert stages[0].kind == "stem" and stages[-1].kind == "neck"
    with torch.no_grad():
        assert torch.equal(peft.run_stages(stages, x), sam.image_encoder(x))
        head, tail = peft.split_encoder(sam, 1)
        assert torch.equal(peft.run_stages(tail, peft.run_stages(head, x)), sam.image_encoder(x))
    assert [s.kind for s in tail] == ["block", "neck"]  # the last block, then the neck


@pytest.mark.parametrize("strategy", ["adapter", "lora", "svd"])
def test_last_blocks_adapts_only_the_last_blocks(strategy):
    every = peft.STRATEGIES[strategy](load_tiny_sam())
    last = peft.STRATEGIES[strategy](load_tiny_sam(), last_blocks=1)
    assert peft.adaptation(last)["options"]["last_blocks"] == 1
    assert "last_blocks" not in peft.adaptation(every)["options"]  # files saved before the option still load
    assert 0 < peft.trainable_parameters(last)[0] < peft.trainable_parameters(every)[0]
    head, _ = peft.split_encoder(load_tiny_sam(), 1)
    first_block = last.image_encoder.blocks[0]
    assert not any(p.requires_grad for p in first_block.parameters())  # head: frozen and untouched
    assert any(p.requires_grad for p in last.image_encoder.blocks[-1].parameters())
    assert len(head) == 2  # stem + the first of tiny_sam's two blocks


def test_full_with_last_blocks_trains_the_tail_prompt_encoder_and_decoder(litemedsam):
    sam = peft.full(copy.deepcopy(litemedsam), last_blocks=2)
    head, tail = peft.split_encoder(sam, 2)
    trainable = {id(p) for p in sam.parameters() if p.requires_grad}
    for stage in head:
        assert not any(id(p) in trainable for m in stage.modules for p in m.parameters())
    for part in [*(m for stage in tail for m in stage.modules), sam.prompt_encoder, sam.mask_decoder]:
        assert all(id(p) in trainable for p in part.parameters())
    assert peft.trainable_parameters(sam)[0] < peft.trainable_parameters(peft.full(copy.deepcopy(litemedsam)))[0]


def test_last_blocks_is_checked():
    with pytest.raises(ValueError, match="last_blocks=3 but the encoder has 2"):
        peft.lora(load_tiny_sam(), last_blocks=3)
    with pytest.raises(ValueError, match="last_blocks"):
        peft.split_encoder(load_tiny_sam(), 0)
