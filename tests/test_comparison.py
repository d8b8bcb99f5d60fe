"""utils.comparison: splits that say what they leak, the matched comparison, records, claims, shipping."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from utils import comparison, peft, training
from utils.datasets import Case

pytestmark = pytest.mark.filterwarnings("ignore::utils.models.MeaninglessModelWarning")


def disk_case(seed: int, size: int = 64) -> Case:
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:size, :size]
    cy, cx = rng.uniform(0.35, 0.65, size=2) * size
    mask = (rows - cy) ** 2 + (cols - cx) ** 2 < (rng.uniform(0.2, 0.3) * size) ** 2
    return Case(image=np.where(mask, 200, 40).astype(np.uint8), mask=mask, name=f"disk_{seed}", modality="synthetic")


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
    assert list(tiny_comparison.models) == ["lora"]


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
    table = comparison.comparison_table(records)
    assert list(table.index) == list(peft.STRATEGIES) and "gain, 95% CI" in table


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
    with pytest.raises(ValueError, match="No records"):
        comparison.read_comparison({})


def test_strategy_parameters_on_vit_b_without_weights():
    table = comparison.strategy_parameters("sam_vit_b")
    assert table.loc["full", "all"] == 93_735_472  # SAM ViT-B, the published 93.7 M
    assert table.loc["decoder_only", "mask_decoder"] == 4_058_340 and table.loc["decoder_only", "image_encoder"] == 0
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
