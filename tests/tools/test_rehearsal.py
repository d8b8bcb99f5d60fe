"""utils.tools.rehearsal: format-faithful stand-ins, accepted only through the explicit rehearsal switch."""

import numpy as np
import pytest
import torch

from utils import datasets, machine
from utils.tools import rehearsal


def test_standin_medsegbench_has_the_real_keys_channels_and_reads_as_cases(tmp_path):
    for flag, channels in (("busi", 1), ("isic2016", 3)):
        path = rehearsal.standin_medsegbench(tmp_path / f"{flag}.npz", flag)
        with np.load(path) as npz:
            assert sorted(npz) == sorted(f"{s}_{k}" for s in ("train", "val", "test") for k in ("images", "label"))
            images, labels = npz["test_images"], npz["test_label"]
        assert images.dtype == np.uint8 and labels.dtype == np.uint8
        assert images.shape == ((8, 256, 256) if channels == 1 else (8, 256, 256, 3))
        assert set(np.unique(labels)) == {0, 1} and all(m.any() for m in labels)  # every case has a target
        read_images, read_labels = datasets._read_medsegbench(path, "train", None)
        assert len(read_images) == rehearsal.STANDIN_SAMPLES["train"] == len(read_labels)


def test_standin_medmnist_holds_every_class_in_every_split(tmp_path):
    path = rehearsal.standin_medmnist(tmp_path / "retinamnist_224.npz", "retinamnist")
    with np.load(path) as npz:
        assert npz["test_images"].shape == (8, 224, 224, 3) and npz["test_labels"].shape == (8, 1)
        assert set(npz["train_labels"][:, 0]) == set(range(5))  # retinamnist grades 0-4
    gray = rehearsal.standin_medmnist(tmp_path / "breastmnist_224.npz", "breastmnist")
    with np.load(gray) as npz:
        assert npz["val_images"].shape == (2, 224, 224) and set(npz["val_labels"][:, 0]) == {0, 1}


@pytest.mark.slow
def test_standin_sam_checkpoint_is_the_official_layout(tmp_path):
    from segment_anything import sam_model_registry

    from utils import models

    path = rehearsal.standin_sam_checkpoint(tmp_path / "sam_vit_b_01ec64.pth")
    state = models._load_state(path)  # weights_only=True, as the course loads the real file
    with torch.device("meta"):
        official = sam_model_registry["vit_b"](checkpoint=None).state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == {k: tuple(v.shape) for k, v in official.items()}
    assert abs(path.stat().st_size - models.REGISTRY["sam_vit_b"].size) < 1e6  # as big as the real one
    again = rehearsal.standin_sam_checkpoint(tmp_path / "again.pth")
    weight = "image_encoder.patch_embed.proj.weight"  # randomly initialised (pos_embed starts at zero)
    assert torch.equal(models._load_state(again)[weight], state[weight]) and state[weight].std() > 0  # seeded
    with pytest.raises(ValueError, match="Unknown SAM variant"):
        rehearsal.standin_sam_checkpoint(tmp_path / "x.pth", variant="vit_x")


def test_only_the_rehearsal_switch_accepts_a_stand_in_and_only_for_its_urls(
    tmp_path, http_server, course_cache, monkeypatch
):
    import json

    from utils import datasets, download

    standin = rehearsal.standin_medsegbench(tmp_path / "busi_256.npz", "busi")
    url = datasets.medsegbench_info("busi")["files"][256]["url"]  # the registry's URL and MD5
    monkeypatch.setenv("SAMCOURSE_MIRROR", http_server.base_url)
    http_server.add_file(url.split("?")[0].split("zenodo.org", 1)[1], standin.read_bytes())
    monkeypatch.delenv(machine.REHEARSAL_ENV, raising=False)
    with pytest.raises(download.ChecksumError):  # without the switch the registry's hash refuses it
        datasets.download_medsegbench("busi")
    manifest = tmp_path / "manifest.json"
    other = datasets.medsegbench_info("pandental")["files"][256]["url"]
    entry = {"hash": f"sha256:{download.file_hash(standin)}", "size": standin.stat().st_size}
    manifest.write_text(json.dumps({"files": {other: entry}}))
    monkeypatch.setenv(machine.REHEARSAL_ENV, str(manifest))
    with pytest.raises(download.ChecksumError):  # the switch names another URL: this one keeps its hash
        datasets.download_medsegbench("busi")
    manifest.write_text(json.dumps({"files": {url: entry}}))
    assert download.file_hash(datasets.download_medsegbench("busi")) == entry["hash"].split(":")[1]
    assert len(datasets.medsegbench("busi", n=2)) == 2


def test_rehearse_runs_a_notebook_in_full_mode_through_the_mirror(tmp_path, monkeypatch):
    import json

    import nbformat

    from utils.tools import prefetch

    monkeypatch.setattr(prefetch, "FULL_MODE_MODELS", ())  # the 375 MB checkpoint has its own test
    monkeypatch.setattr(prefetch, "FULL_MODE_MEDSEGBENCH", ("busi",))
    monkeypatch.setattr(prefetch, "FULL_MODE_MEDMNIST", ())
    monkeypatch.setattr(rehearsal, "SMOKE_PARAMETERS", {"01_demo": {"EXTRA": 3}, "02_other": {"EXTRA": 9}})
    kernel = {"name": "python3", "language": "python", "display_name": "Python 3"}
    notebook = nbformat.v4.new_notebook(metadata={"kernelspec": kernel})
    parameters = nbformat.v4.new_code_cell('MODE = "auto"\nBUDGET = "auto"\nEXTRA = 0')
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [
        parameters,
        nbformat.v4.new_code_cell(
            "from utils import datasets, env\n"
            "run = env.start_run('01_demo', mode=MODE, device='cpu', budget=BUDGET)\n"
            "run.banner()\n"
            "cases = datasets.medsegbench('busi', n=run.budget(full=9, offline=9, smoke=1))\n"
            "run.save_results(n=len(cases), size=run.size, extra=EXTRA)"
        ),
    ]
    path = tmp_path / "nb" / "01_demo.ipynb"
    path.parent.mkdir()
    nbformat.write(notebook, path)
    summary = rehearsal.rehearse(tmp_path / "out", notebooks=[path])
    assert summary["ok"] and summary["notebooks"]["01_demo"]["status"] == "ok", summary
    assert summary["requests"] == {"MedSegBench busi 256px": 1}  # downloaded once, through the mirror
    results = json.loads((tmp_path / "out" / "01_demo" / "results.json").read_text())
    assert (results["mode"], results["budget"], results["rehearsal"]) == ("full", "smoke", True)
    assert results["results"] == {"n": 1, "size": "smoke", "extra": 3}  # its own extra parameter, not 02's
    assert "REHEARSAL: STAND-IN FILES" in (tmp_path / "out" / "01_demo.ipynb").read_text()
    assert (tmp_path / "out" / "cache" / "medsegbench" / "busi_256.npz").is_file()  # never the real cache
    assert "REHEARSAL PASSED" in rehearsal.format_summary(summary)


def test_a_full_run_that_prints_a_litemedsam_sentence_without_running_it_is_wrong(tmp_path):
    import json

    import nbformat

    def executed(models, printed):
        cell = nbformat.v4.new_code_cell("print(...)")
        table = nbformat.v4.new_output("execute_result", data={"text/plain": "litemedsam  9.8 M"}, execution_count=1)
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed), table]  # a table may name it
        path = tmp_path / f"{len(list(tmp_path.iterdir()))}_nb.ipynb"
        nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
        (tmp_path / path.stem).mkdir()
        payload = {"mode": "full", "rehearsal": True, "models": models}
        (tmp_path / path.stem / "results.json").write_text(json.dumps(payload))
        return path

    sentence = "LiteMedSAM was trained with boxes only, so its single points fail\n"
    (problem,) = rehearsal._problems(executed(["sam_vit_b"], "Dice 0.41\n" + sentence))
    assert "LiteMedSAM sentence" in problem and "sam_vit_b" in problem
    assert rehearsal._problems(executed(["sam_vit_b", "litemedsam"], sentence)) == []  # it ran: it may be named
    assert rehearsal._problems(executed(["sam_vit_b"], "SAM ViT-B was trained with points too\n")) == []
