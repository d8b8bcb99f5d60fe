"""utils.lessons.comparison: splits that say what they leak, the matched comparison, records, claims, shipping."""

from __future__ import annotations

import json
import weakref

import numpy as np
import pandas as pd
import pytest
import torch

from utils import peft, training
from utils.evaluate import evaluate
from utils.lessons import comparison
from utils.machine import to_jsonable
from utils.models import CoursePredictor
from utils.prompts import box_from_mask

from fakes import disk_case, load_tiny_sam

pytestmark = pytest.mark.filterwarnings("ignore::utils.models.MeaninglessModelWarning")


@pytest.fixture(scope="module")
def disk_split() -> comparison.Split:
    return comparison.Split("disks", [disk_case(i) for i in range(2)], [disk_case(10 + i) for i in range(2)], "", "")


@pytest.fixture(scope="module")
def tiny_comparison(disk_split) -> comparison.Comparison:
    return comparison.compare_strategies(
        "tiny_sam", disk_split, steps=1, lr=1e-3, batch_size=1, eval_every=None, seed=0, device="cpu",
        progress=False, gallery=disk_split.test[:2], keep=("lora",),
    )  # fmt: skip


def test_phantom_split_is_disjoint_deterministic_and_says_what_it_leaks():
    split = comparison.make_split("microscopy", n_train=2, n_test=2)
    again = comparison.make_split("microscopy", n_train=2, n_test=2)
    names = [c.name for c in split.train], [c.name for c in split.test]
    assert not set(names[0]) & set(names[1])
    assert all(np.array_equal(a.image, b.image) for a, b in zip(split.test, again.test))
    assert "seeds 1000" in split.how and "generator" in split.leaks
    table = split.describe()
    assert list(table["part"]) == ["train", "train", "test", "test"] and (table["mask_px"] > 0).all()


def test_slab_split_keeps_a_gap_between_train_and_test_slices():
    split = comparison.make_split("ventricles", n_train=4, n_test=3)
    train_slices = [c.meta["slice"] for c in split.train]
    test_slices = [c.meta["slice"] for c in split.test]
    assert max(train_slices) + 1 < min(test_slices)  # not even neighbours
    gap = min(test_slices) - max(train_slices)
    assert f"{gap} mm apart" in split.how and "one brain" in split.leaks


def test_every_strategy_trains_under_one_protocol(tiny_comparison):
    results = tiny_comparison.results
    assert list(results) == list(peft.STRATEGIES)
    histories = [r.history["step"].tolist() for r in results.values()]
    assert all(h == histories[0] for h in histories)  # same steps and evaluation points
    assert len({r.options["seed"] for r in results.values()}) == 1
    # Every run starts from the same pretrained model: identical held-out Dice before training.
    befores = [r.val_before["dice"].to_numpy() for r in results.values()]
    assert all(np.array_equal(b, befores[0]) for b in befores)
    assert set(tiny_comparison.masks) == {"zero-shot", *peft.STRATEGIES}
    assert all(len(m) == 2 and m[0].shape == (64, 64) for m in tiny_comparison.masks.values())
    assert list(tiny_comparison.models) == ["lora"] and tiny_comparison.failed == {}


def test_records_have_the_issue_keys_and_a_paired_gain(tiny_comparison):
    records = tiny_comparison.records(n_boot=200)
    required = {"trainable_params", "total_params", "peak_mem_mb", "step_time_s", "dice_before", "dice_after"}
    for strategy, record in records.items():
        assert required <= set(record)
        before = tiny_comparison.results[strategy].val_before["dice"].to_numpy()
        after = tiny_comparison.results[strategy].val_after["dice"].to_numpy()
        assert record["gain"] == pytest.approx(np.mean(after - before))
        assert record["gain_ci"][0] <= record["gain"] <= record["gain_ci"][1]
        assert record["improved"] == (record["gain_ci"][0] > 0)
    assert records["full"]["trainable_params"] == records["full"]["total_params"]
    assert all(r["status"] == "ok" for r in records.values())
    table = comparison.comparison_table(records)
    assert list(table.index) == list(peft.STRATEGIES) and "gain, 95% CI" in table
    assert "status" not in table  # the column appears only when a strategy did not train


def synthetic_record(before, after, step=1.0, extra=100.0) -> dict:
    record = {"dice_before": before, "dice_after": after, "gain": after - before, "step_time_s": step,
              "extra_mem_mb": extra, "improved": after - before > 0.1}  # fmt: skip
    record["gain_ci"] = [after - before - 0.1, after - before + 0.1]
    return record


def test_read_comparison_states_what_the_numbers_say():
    records = {"decoder_only": synthetic_record(0.2, 0.7, step=0.2, extra=50), "lora": synthetic_record(0.2, 0.25),
               "full": synthetic_record(0.2, 0.6, step=2.0, extra=400)}  # fmt: skip
    claims = comparison.read_comparison(records)
    assert claims["best"] == "decoder_only" and claims["any_improved"]
    assert claims["improved"] == ["decoder_only", "full"] and claims["not_improved"] == ["lora"]
    assert claims["step_time_vs_full"]["decoder_only"] == pytest.approx(0.1)
    assert claims["memory_vs_full"]["lora"] == pytest.approx(0.25)
    assert any("lora" in s and "noise" in s for s in claims["sentences"])
    # issue 15: "cheapest per step" and the largest trainable share are printed from the records
    assert (
        claims["cheapest_per_step"] == "decoder_only"
        and "Cheapest per step: decoder_only (0.200 s)." in claims["sentences"]
    )
    assert claims["peft_max_trainable_percent"] is None  # these records carry no parameter counts
    records["lora"]["trainable_percent"] = 0.05
    assert comparison.read_comparison(records)["peft_max_trainable_percent"] == 0.05
    with pytest.raises(ValueError, match="No records"):
        comparison.read_comparison({})


def test_read_comparison_leaves_out_strategies_that_ran_out_of_memory():
    oom = {"status": "out of memory at batch 2", "lr": 3e-5, "steps": 100, "batch_size": 2, "accumulate": 1}
    records = {"decoder_only": synthetic_record(0.2, 0.3), "lora": synthetic_record(0.2, 0.6), "full": oom}
    claims = comparison.read_comparison(records)
    assert claims["best"] == "lora" and claims["failed"] == {"full": "out of memory at batch 2"}
    assert "full" not in claims["improved"] + claims["not_improved"] and "memory_vs_full" not in claims
    assert claims["zero_shot_dice"] == pytest.approx(0.2)
    assert any("full (out of memory at batch 2)" in s for s in claims["sentences"])
    nothing = comparison.read_comparison({"full": oom})  # every strategy failed: no best, still sentences
    assert nothing["best"] is None and not nothing["any_improved"] and nothing["zero_shot_dice"] is None
    assert nothing["sentences"] == ["Not trained, so left out of the comparison: full (out of memory at batch 2)."]
    table = comparison.comparison_table({"full": oom})
    assert list(table.columns) == ["lr", "status"] and table.loc["full", "status"] == "out of memory at batch 2"


def test_a_strategy_that_runs_out_of_memory_becomes_a_row(monkeypatch):
    split = comparison.make_split("microscopy", 2, 1)
    loaded, alive = [], []  # weak references to the models loaded; which were still alive at each load
    load_sam, adapter_forward = comparison.load_sam, peft.Adapter.forward

    def watched_load(*args, **kwargs):
        alive.append([ref() is not None for ref in loaded])
        loaded.append(weakref.ref(model := load_sam(*args, **kwargs)))
        return model

    def out_of_memory(self, x):  # evaluation runs; the first training forward pass fails, as on a full GPU
        if torch.is_grad_enabled():
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.25 GiB (injected)")
        return adapter_forward(self, x)

    monkeypatch.setattr(comparison, "load_sam", watched_load)
    monkeypatch.setattr(peft.Adapter, "forward", out_of_memory)
    compared = comparison.compare_strategies(
        "tiny_sam", split, steps=1, lr=1e-3, batch_size=1, accumulate=2, eval_every=None, seed=0, device="cpu",
        progress=False, gallery=split.test, keep=("adapter", "lora"),
    )  # fmt: skip
    others = [s for s in peft.STRATEGIES if s != "adapter"]
    assert list(compared.results) == others and list(compared.models) == ["lora"]
    assert set(compared.masks) == {"zero-shot", *others}
    assert compared.failed["adapter"]["status"] == "out of memory at batch 1, accumulating 2"
    # loads: zero-shot, decoder_only, adapter, lora, ...: the failed adapter model is gone before lora loads
    assert alive[3] == [False, False, False]
    assert compared.failed["adapter"]["lr"] == 1e-3 and compared.results["lora"].history["loss"].notna().any()
    records = compared.records(n_boot=100)
    assert list(records) == list(peft.STRATEGIES) and records["adapter"]["status"].startswith("out of memory")
    assert all(records[s]["status"] == "ok" and records[s]["steps"] == 1 for s in others)
    table = comparison.comparison_table(records)
    assert list(table.index) == list(peft.STRATEGIES) and table.columns[-1] == "status"
    assert table.loc["adapter", "status"] == "out of memory at batch 1, accumulating 2"
    assert table.loc["adapter", "Dice after"] == "-" and table.loc["lora", "status"] == "ok"
    assert table.loc["lora", "Dice after"] == pytest.approx(records["lora"]["dice_after"], abs=1e-3)
    claims = comparison.read_comparison(records)
    assert claims["best"] != "adapter" and "adapter" not in claims["improved"] + claims["not_improved"]
    assert set(claims["memory_vs_full"]) == set(others)
    assert any("adapter (out of memory at batch 1, accumulating 2)" in s for s in claims["sentences"])
    saved = json.loads(json.dumps(to_jsonable({"strategies": records, "claims": claims})))
    assert saved["strategies"]["adapter"] == records["adapter"] and saved["claims"]["failed"] == claims["failed"]
    assert saved["strategies"]["lora"]["dice_after"] == pytest.approx(records["lora"]["dice_after"])
    import matplotlib.pyplot as plt

    fig = comparison.plot_gallery(split.test, compared.masks)
    assert len(fig.axes) == len(others) + 1
    curves = training.plot_learning_curves(compared.results)
    assert len(curves.axes[0].lines) == len(others)
    assert list(training.results_table(compared.results).index) == others
    plt.close("all")


def test_other_errors_still_stop_the_comparison(monkeypatch):
    def broken(*_args, **_kwargs):
        raise ValueError("a bug, not a lack of memory")

    monkeypatch.setattr(peft.Adapter, "forward", broken)
    split = comparison.make_split("microscopy", 2, 1)
    with pytest.raises(ValueError, match="a bug"):
        comparison.compare_strategies("tiny_sam", split, ("decoder_only", "adapter"), steps=1, lr=1e-3, batch_size=1,
                                      eval_every=None, device="cpu", progress=False)  # fmt: skip


def test_strategy_parameters_on_vit_b_without_weights():
    table = comparison.strategy_parameters("sam_vit_b")
    assert table.loc["full", "all"] == 93_735_472  # SAM ViT-B, the published 93.7 M
    assert table.loc["decoder_only", "mask_decoder"] == 4_058_340 and table.loc["decoder_only", "image_encoder"] == 0
    assert round(table.loc["decoder_only", "share_%"]) == 4  # 05: "the decoder is 4% of 94 M" for SAM ViT-B
    for strategy in ("adapter", "lora", "svd"):
        assert 0 < table.loc[strategy, "share_%"] < 5
        assert table.loc[strategy, "image_encoder"] == table.loc[strategy, "all"]  # encoder additions only


def test_roundtrip_reloads_and_merges_lora_exactly(tiny_comparison, disk_split, tmp_path):
    trained = tiny_comparison.models["lora"]
    assert any(float(p.detach().abs().max()) > 0 for n, p in trained.named_parameters() if "lora_B" in n)  # it trained
    report = comparison.roundtrip_check(trained, "tiny_sam", tmp_path / "lora.pt", disk_split.test[0])
    assert report["strategy"] == "lora" and report["saved_values"] == peft.trainable_parameters(trained)[0]
    assert report["reloaded_max_abs_diff"] < 1e-5 and report["merged_max_abs_diff"] < 1e-4
    assert report["file_kb"] < 100


def test_plot_gallery_draws_a_case_by_model_grid(tiny_comparison, disk_split):
    import matplotlib.pyplot as plt

    fig = comparison.plot_gallery(disk_split.test[:2], tiny_comparison.masks)
    assert len(fig.axes) == 2 * len(tiny_comparison.masks)
    assert fig.axes[0].get_title().startswith("zero-shot")
    plt.close(fig)


def test_bad_input_is_refused_before_any_training(disk_split):
    with pytest.raises(ValueError, match="Unknown split"):
        comparison.make_split("brats")
    with pytest.raises(ValueError, match="n_train"):
        comparison.make_split("microscopy", n_train=0)
    with pytest.raises(ValueError, match="no entry for 'lora'"):
        comparison.compare_strategies(
            "tiny_sam", disk_split, ("decoder_only", "lora"), steps=1, lr={"decoder_only": 1e-3}
        )
    with pytest.raises(ValueError, match="Unknown or no strategies"):
        comparison.compare_strategies("tiny_sam", disk_split, ("prompt_tuning",), steps=1, lr=1e-3)
    result = training.TrainResult(strategy="lora", history=pd.DataFrame(), dice_before=0, dice_after=0, step_time_s=0,
        peak_mem_mb=0, memory_metric="cpu_rss", rss_before_mb=0, extra_mem_mb=0, device="cpu", amp=False, steps=1,
        seconds=0, embed_seconds=0)  # fmt: skip
    with pytest.raises(ValueError, match="no held-out cases"):
        comparison.strategy_record(result)


# ------------------------------------------------------------------ last K blocks, learning rates, shares, plateau


def _fake_result(strategy: str, before, after, steps=(0, 4, 8), middle=None) -> training.TrainResult:
    """A TrainResult with given per-case held-out Dice (before, at the middle evaluations, after)."""
    cases = [f"c{i}" for i in range(len(before))]

    def table(values):
        return pd.DataFrame({"case": cases, "mode": "box", "dice": np.asarray(values, float)})

    tables = {steps[0]: table(before), **{s: table(middle if middle is not None else after) for s in steps[1:-1]},
              steps[-1]: table(after)}  # fmt: skip
    history = pd.DataFrame({"step": list(steps), "loss": [np.nan] + [0.5] * (len(steps) - 1)})
    return training.TrainResult(
        strategy, history, float(np.mean(before)), float(np.mean(after)), 0.1, 1.0, "cpu_rss", 1.0, 0.0, "cpu",
        False, steps[-1], 1.0, 0.0, val_before=tables[steps[0]], val_after=tables[steps[-1]], val_tables=tables,
    )  # fmt: skip


def test_gain_shares_are_ratios_of_mean_gains_with_a_paired_ci():
    before = [0.1, 0.2, 0.0, 0.1]
    results = {
        "lora": _fake_result("lora", before, [0.5, 0.6, 0.3, 0.4]),
        "full": _fake_result("full", before, [0.6, 0.8, 0.4, 0.6]),
    }
    shares = comparison.gain_shares(results, n_boot=500, seed=0)
    assert shares["full"]["share"] == pytest.approx(1.0) and shares["full"]["share_ci"] == pytest.approx([1.0, 1.0])
    assert shares["lora"]["share"] == pytest.approx((0.45 - 0.1) / (0.6 - 0.1))
    low, high = shares["lora"]["share_ci"]
    assert low <= shares["lora"]["share"] <= high and high - low > 0
    sentence = comparison.share_sentence(shares, steps=8)
    expected = "Share of full fine-tuning's held-out Dice gain (+0.500) at 8 steps each: lora 70% [95% CI"
    assert sentence.startswith(expected)
    with pytest.raises(ValueError, match="same held-out Dice"):
        comparison.gain_shares({**results, "svd": _fake_result("svd", [0.9] * 4, [0.9] * 4)}, n_boot=50)
    flat = {"full": _fake_result("full", before, before)}
    assert "did not gain" in comparison.share_sentence(comparison.gain_shares(flat, n_boot=50))


def test_plateau_compares_the_last_quarter_with_the_ci():
    before = [0.1, 0.2, 0.0, 0.1]
    still = _fake_result("lora", before, [0.5, 0.6, 0.3, 0.4], steps=(0, 2, 4, 6, 8), middle=[0.5, 0.6, 0.3, 0.4])
    record = comparison.plateau(still, n_boot=200)
    assert record["from_step"] == 6 and record["to_step"] == 8 and record["change"] == 0 and record["flat"]
    rising = _fake_result("lora", before, [0.9, 0.9, 0.9, 0.9], steps=(0, 2, 4, 6, 8), middle=[0.2, 0.3, 0.1, 0.2])
    record = comparison.plateau(rising, n_boot=200)
    assert record["change"] == pytest.approx(0.7) and not record["flat"]
    assert record["half_width"] == 0  # four equal final values: a zero-width CI


def test_learning_rate_search_uses_only_the_training_cases(disk_split, monkeypatch):
    seen, scored = [], []
    real_train, real_scores = comparison.train, comparison.fold_scores

    def spy(sam, train_cases, val_cases, **kwargs):
        seen.append(([c.name for c in train_cases], [c.name for c in val_cases], kwargs["lr"], kwargs["steps"]))
        return real_train(sam, train_cases, val_cases, **kwargs)

    def spy_scores(sam, cases, **kwargs):
        scored.append([c.name for c in cases])
        return real_scores(sam, cases, **kwargs)

    monkeypatch.setattr(comparison, "train", spy)
    monkeypatch.setattr(comparison, "fold_scores", spy_scores)
    grid = {"decoder_only": [1e-4, 1e-3], "lora": [1e-3, 1e-2]}
    search = comparison.search_learning_rates("tiny_sam", disk_split, grid, steps=1, seed=0, device="cpu",
                                              progress=False, last_blocks=1, batch_size=1)  # fmt: skip
    test_names = {c.name for c in disk_split.test}
    assert len(seen) == 4 and all(s[3] == 1 for s in seen)  # the same budget for every candidate
    assert all(fit == [disk_split.train[0].name] and val == [] for fit, val, _, _ in seen)
    assert scored == [[disk_split.train[1].name]] * 4  # scored on the validation fold of the training cases
    assert not {name for names in scored for name in names} & test_names
    for strategy, rates in grid.items():
        assert search.chosen[strategy] == rates[int(np.argmin(search.val_loss[strategy]))]
        assert all(np.isfinite(search.val_loss[strategy])) and all(0 <= d <= 1 for d in search.val_dice[strategy])
    table = search.table()
    assert set(table["strategy"]) == set(grid) and table["chosen"].sum() == 2 and "val_loss" in table
    json.dumps(search.record())


def test_fold_scores_are_evaluates_box_dice_and_the_training_loss(disk_split):
    sam, cases = load_tiny_sam(), disk_split.train
    dice, loss = comparison.fold_scores(sam, cases, seed=3)
    table = evaluate(CoursePredictor(sam), cases, modes=("box",), seed=3, progress=False)
    assert dice == pytest.approx(table["dice"].mean(), abs=1e-12)
    predictor, losses = CoursePredictor(sam), []
    for case in cases:
        predictor.set_image(case.image)
        _, _, low_res = predictor.predict(box=box_from_mask(case.mask), multimask_output=False)
        logits = torch.as_tensor(low_res)[None]
        losses.append(training.make_loss()(logits, training.mask_target(case, predictor, logits.shape[-1])).item())
    assert loss == pytest.approx(np.mean(losses), rel=1e-6)
    cached = comparison.fold_scores(sam, cases, seed=3, last_blocks=1)  # the frozen head from a cache: the same
    assert cached == pytest.approx((dice, loss), rel=1e-5)


def test_last_blocks_reaches_every_encoder_strategy(disk_split):
    compared = comparison.compare_strategies("tiny_sam", disk_split, ("decoder_only", "lora", "full"), steps=1, lr=1e-3,
                                             batch_size=1, eval_every=None, progress=False, last_blocks=1)  # fmt: skip
    heads = {s: r.options["cached_head"] for s, r in compared.results.items()}
    assert heads["decoder_only"] == {"last_blocks": 1, "images": 4}  # the first run computes 2 train + 2 test heads
    assert heads["lora"] == heads["full"] == {"last_blocks": 1, "images": 0}  # the later runs share them
    table = comparison.strategy_parameters("tiny_sam", ("lora", "full"), last_blocks=1)
    assert table.loc["lora", "all"] == compared.results["lora"].trainable
