"""utils.lessons.sweeps: one factor at a time on phantoms, with a fake predictor so the tests stay fast."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from scipy import ndimage as ndi

from utils import phantoms
from utils.lessons import sweeps

from fakes import BoxFiller


def test_every_sweep_moves_a_knob_its_style_honours_along_a_sorted_axis():
    assert list(sweeps.SWEEPS)[0] == "contrast"
    for factor, spec in sweeps.SWEEPS.items():
        assert spec.knob in phantoms.default_knobs(spec.style), factor
        assert spec.harder in ("lower", "higher"), factor
        assert list(spec.values) == sorted(spec.values), f"{factor}: values must be in axis order"
        assert sweeps.pick_values(factor, None) == spec.values == sweeps.pick_values(factor, len(spec.values) + 1)
        offline = sweeps.pick_values(factor, 4)
        assert len(offline) == min(4, len(spec.values)) and set(offline) <= set(spec.values)
        assert (offline[0], offline[-1]) == (spec.values[0], spec.values[-1]) and list(offline) == sorted(offline)
        assert sweeps.pick_values(factor, 2) == (spec.values[0], spec.values[-1])
        assert factor in {f for f, *_ in sweeps.TAXONOMY.values()}, f"{factor} is missing from the taxonomy"
    table = sweeps.describe_sweeps()
    assert list(table.index) == list(sweeps.SWEEPS) and table.loc["ct_window", "knob"] == "window"
    for bad in ("offline", 1, 2.0, True):  # a size (run.budget(...)), never a budget's name
        with pytest.raises(ValueError, match="n_values must be a whole number >= 2"):
            sweeps.pick_values("contrast", bad)
    assert sweeps.pick_values("contrast", 4) == (0.0, 0.05, 0.25, 1.0)  # evenly spaced indices 0, 1, 3, 4
    assert sweeps.pick_values("contrast", 3) == (0.0, 0.1, 1.0)


def test_sweep_case_is_deterministic_named_and_applies_the_knob():
    a = sweeps.sweep_case("ct_window", 250.0, seed=1, size=64)
    b = sweeps.sweep_case("ct_window", 250.0, seed=1, size=64)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert a.name == "ct_window=250_ct_seed1"
    assert a.meta["knobs"]["window"] == (250.0, 400.0)
    assert a.meta["sweep"] == {
        "factor": "ct_window", "value": 250.0, "knob": "window", "knob_value": (250.0, 400.0), "coupled": {}
    }  # fmt: skip
    # one knob moves, the rest stays: the same HU image seen through another window
    soft = sweeps.sweep_case("ct_window", 40.0, seed=1, size=64)
    assert np.array_equal(soft.meta["hu"], a.meta["hu"]) and not np.array_equal(soft.image, a.image)
    with pytest.raises(ValueError, match="Unknown factor"):
        sweeps.sweep_case("colour", 1)


def test_ring_sweep_keeps_the_outer_disc_and_only_grows_the_hole():
    full = sweeps.sweep_case("ring", 0.0, seed=2, size=128)
    ring = sweeps.sweep_case("ring", 0.5, seed=2, size=128)
    assert ring.meta["sweep"]["coupled"] == {"target_area": pytest.approx(sweeps.RING_DISC_AREA * 0.5)}
    filled = ndi.binary_fill_holes(ring.mask)
    assert abs(int(filled.sum()) - int(full.mask.sum())) < 0.05 * full.mask.sum()  # same disc
    assert (filled & full.mask).sum() > 0.9 * full.mask.sum()  # in the same place
    assert ring.mask.sum() == pytest.approx(0.5 * full.mask.sum(), rel=0.1)  # half of it is hole


def test_touching_sweep_targets_one_central_nucleus():
    case = sweeps.sweep_case("touching", 30, seed=0, size=128)
    instances = case.meta["instances"]
    ids = np.unique(instances[case.mask])
    assert len(ids) == 1 and ids[0] > 0
    assert np.array_equal(case.mask, instances == ids[0])
    assert ndi.label(case.mask)[1] == 1
    # the chosen nucleus is the one nearest the centre
    labels = np.arange(1, instances.max() + 1)
    centres = np.array(ndi.center_of_mass(np.ones_like(instances), instances, labels))
    distance = np.hypot(*(centres - 63.5).T)
    assert ids[0] == labels[np.argmin(distance)]


def test_sweep_table_has_one_row_per_value_and_seed_and_one_encoder_call_each():
    fake = BoxFiller()
    df = sweeps.sweep(fake, "ring", values=(0.0, 0.5, 0.9), seeds=(0, 3), size=64, progress=False)
    assert len(df) == 6 and fake.encoder_calls == 6 and df.attrs["encoder_calls"] == 6
    assert list(df.columns[:8]) == ["factor", "style", "knob", "value", "value_index", "value_label", "seed", "size"]
    assert df["value_index"].tolist() == [0, 0, 1, 1, 2, 2] and df["seed"].tolist() == [0, 3] * 3
    assert set(df["mode"]) == {"box"} and "mask" in df.columns
    # a filled box against a ring: the bigger the hole, the lower the Dice
    curve = sweeps.curves(df)["ring"]
    assert curve["values"] == [0.0, 0.5, 0.9] and curve["n"] == [2, 2, 2]
    assert curve["dice_mean"][0] > curve["dice_mean"][1] > curve["dice_mean"][2]
    assert all(lo <= m <= hi for m, (lo, hi) in zip(curve["dice_mean"], curve["dice_ci"]))
    assert sweeps.trend(curve)["falls"] is True
    with pytest.raises(ValueError, match="repeats"):
        sweeps.sweep(fake, "ring", values=(0.5, 0.5), size=64)
    with pytest.raises(ValueError, match="seeds"):
        sweeps.sweep(fake, "ring", seeds=(), size=64)


def test_curves_keep_tuples_json_ready_and_one_seed_gives_zero_width():
    df = sweeps.sweep(BoxFiller(), "contrast", values=(0.1, 1.0), seeds=(0,), size=64, progress=False)
    curve = sweeps.curves(df)["contrast"]
    assert curve["value_labels"] == ["0.1", "1"] and curve["harder"] == "lower"
    assert all(lo == hi for lo, hi in curve["dice_ci"])
    with pytest.raises(ValueError, match="Not a sweep table"):
        sweeps.curves(df.drop(columns="value_index"))


def test_trend_reads_curves_from_the_easy_end():
    falling = {"values": [0.0, 0.5, 1.0], "harder": "lower", "dice_mean": [0.2, 0.6, 0.9]}
    result = sweeps.trend(falling)
    assert result["easy_value"] == 1.0 and result["hard_value"] == 0.0
    assert result["drop"] == pytest.approx(0.7) and result["spearman"] == pytest.approx(1.0) and result["falls"]
    flat = {"values": [1, 2], "harder": "higher", "dice_mean": [0.8, 0.8]}
    assert sweeps.trend(flat)["falls"] is False and sweeps.trend(flat)["spearman"] == 0.0
    rising = {"values": [1, 2, 3], "harder": "higher", "dice_mean": [0.5, 0.6, 0.7]}
    assert sweeps.trend(rising)["falls"] is False and sweeps.trend(rising)["spearman"] == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="at least two"):
        sweeps.trend({"values": [1], "harder": "higher", "dice_mean": [0.5]})


def test_easiest_hardest_picks_the_extremes_of_one_factor():
    df = sweeps.sweep(BoxFiller(), "ring", values=(0.0, 0.9), seeds=(0,), size=64, progress=False)
    easiest, hardest = sweeps.easiest_hardest(df)
    assert easiest["value"] == 0.0 and hardest["value"] == 0.9 and easiest["dice"] > hardest["dice"]
    two = df.assign(factor=["ring", "blur"])
    with pytest.raises(ValueError, match="one factor"):
        sweeps.easiest_hardest(two)


def test_taxonomy_table_links_every_failure_to_a_remedy_and_the_measured_drop():
    table = sweeps.taxonomy_table()
    assert "domain gap" in table.index and table["what addresses it (notebook)"].str.contains("0[5-7]").all()
    curve = {"contrast": {"values": [0.0, 1.0], "harder": "lower", "dice_mean": [0.4, 0.95]}}
    measured = sweeps.taxonomy_table(curve)
    assert measured.loc["low contrast", "Dice easy -> hard"] == "0.95 -> 0.40"
    assert measured.loc["speckle and noise", "Dice easy -> hard"] == "-"


def test_figures_draw_curves_and_the_easiest_and_hardest_cases():
    fake = BoxFiller()
    df = sweeps.sweep(fake, "ring", values=(0.0, 0.9), seeds=(0,), size=64, progress=False)
    window = sweeps.sweep(fake, "ct_window", values=(150.0, 4000.0), seeds=(0,), size=64, progress=False)
    import pandas as pd

    both = pd.concat([df, window], ignore_index=True)
    fig = sweeps.plot_curves(sweeps.curves(both), ncols=2)
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 2
    fig = sweeps.plot_easiest_hardest(both, ncols=2)
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 4
    with pytest.raises(ValueError, match="no masks"):
        sweeps.plot_easiest_hardest(both.drop(columns="mask"))
    plt.close("all")


def test_curves_list_values_along_the_axis_whatever_the_sweep_order():
    df = sweeps.sweep(BoxFiller(), "ring", values=(0.9, 0.0, 0.5), seeds=(0,), size=64, progress=False)
    curve = sweeps.curves(df)["ring"]
    assert curve["values"] == [0.0, 0.5, 0.9] and curve["value_labels"] == ["0", "0.5", "0.9"]
    assert curve["dice_mean"] == sorted(curve["dice_mean"], reverse=True)  # bigger hole, lower Dice


class PointOrBox(BoxFiller):
    """A filled box for a box prompt; for points, a 3-pixel square around each point (a thin answer)."""

    def predict(self, point_coords=None, point_labels=None, box=None, multimask_output=False):
        if box is not None:
            return super().predict(box=box)
        mask = np.zeros(self.shape, bool)
        for x, y in np.round(point_coords).astype(int):
            mask[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2] = True
        n = 3 if multimask_output else 1
        return np.repeat(mask[None], n, axis=0), np.full(n, 0.9), None


def bias_field(image, strength):
    gain = np.linspace(1.0, 1.0 - 0.8 * strength, image.shape[1])
    return np.clip(image * gain[None, :, None], 0, 255).astype(np.uint8)


def test_a_factor_of_your_own_runs_through_the_same_machinery():
    spec = sweeps.Sweep(style="mri", knob="strength", values=(0.0, 1.0), label="bias", harder="higher",
                        what="a bias field", degrade=bias_field)  # fmt: skip
    plain = phantoms.make_phantom("mri", seed=2, size=64)
    calm = sweeps.sweep_case("bias", 0.0, seed=2, size=64, spec=spec)
    strong = sweeps.sweep_case("bias", 1.0, seed=2, size=64, spec=spec)
    assert np.array_equal(calm.image, plain.image) and np.array_equal(strong.mask, plain.mask)
    assert strong.image[:, -1].mean() < 0.3 * plain.image[:, -1].mean()  # the right edge darkened by 80 %
    assert strong.name == "bias=1_mri_seed2" and strong.meta["sweep"]["knob"] == "strength"
    fake = BoxFiller()
    df = sweeps.sweep(fake, "bias", seeds=(0, 1), size=64, spec=spec, progress=False)
    assert fake.encoder_calls == 4 and set(df["harder"]) == {"higher"} and set(df["label"]) == {"bias"}
    curve = sweeps.curves(df)["bias"]  # a factor SWEEPS does not know: read from the table
    assert curve["label"] == "bias" and curve["values"] == [0.0, 1.0] and curve["n"] == [2, 2]
    with pytest.raises(ValueError, match="Unknown factor"):
        sweeps.sweep(fake, "bias", size=64)  # without its spec
    wrong = sweeps.Sweep(style="mri", knob="s", values=(1.0,), label="", harder="higher", what="",
                         degrade=lambda image, s: image.astype(float))  # fmt: skip
    with pytest.raises(ValueError, match="return uint8"):
        sweeps.sweep_case("wrong", 1.0, size=64, spec=wrong)
    cropped = sweeps.Sweep(style="mri", knob="s", values=(1.0,), label="", harder="higher", what="",
                           degrade=lambda image, s: image[:10])  # fmt: skip
    with pytest.raises(ValueError, match="must keep"):
        sweeps.sweep_case("cropped", 1.0, size=64, spec=cropped)


def test_mode_duel_scores_several_prompts_on_the_same_embeddings():
    fake = PointOrBox()
    df = sweeps.sweep(fake, "thin_structures", values=(1.0, 8.0), seeds=(0,), size=64, progress=False,
                      modes=("box", "point_center", "points_5"), keep_masks=False)  # fmt: skip
    assert fake.encoder_calls == 2 and len(df) == 6  # one embedding per phantom, three prompts each
    duel = sweeps.mode_duel(df)
    assert duel["modes"] == ["box", "point_center", "points_5"] and set(duel["by_value"]["box"]) == {"1", "8"}
    means = duel["mean"]
    assert duel["winner"] == max(means, key=means.get)
    assert duel["margin"] == pytest.approx(means[duel["winner"]] - sorted(means.values())[-2])
    assert means["points_5"] > means["point_center"]  # five squares on the vessels cover more than one
    with pytest.raises(ValueError, match="one prompt mode"):
        sweeps.curves(df)
    with pytest.raises(ValueError, match="at least two modes"):
        sweeps.mode_duel(df[df["mode"] == "box"])


def test_expectations_say_whether_each_held():
    curves = {
        "contrast": {"values": [0.0, 1.0], "harder": "lower", "dice_mean": [0.6, 0.95]},
        "thin_structures": {"values": [1.0, 8.0], "harder": "lower", "dice_mean": [0.2, 0.55]},
        "distractors": {"values": [0, 20], "harder": "higher", "dice_mean": [0.9, 0.85]},
        "mine": {"values": [0, 1], "harder": "higher", "dice_mean": [0.9, 0.1]},  # no expectation: left out
    }
    table = sweeps.expectations(curves)
    assert list(table.index) == ["contrast", "thin_structures", "distractors"]
    assert table["held"].to_dict() == {"contrast": True, "thin_structures": False, "distractors": True}
    assert "0.95 (easy) -> 0.60 (hard)" in table.loc["contrast", "measured"]
    floor = {"contrast": {"values": [0.0, 1.0], "harder": "lower", "dice_mean": [0.1, 0.95]}}
    assert not sweeps.expectations(floor).loc["contrast", "held"]  # fell, but below the box prior's floor
    assert set(sweeps.EXPECTATIONS) == set(sweeps.SWEEPS)
