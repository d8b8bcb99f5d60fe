"""The Colab twin's bookkeeping (tests/tools/colab_twin/check_widgets.py) on made-up inputs: no venv, no kernel.

The check itself (a venv with Colab's ipywidgets 7.7.1 stack running notebook 02) is `make colab-widgets`.
"""

import base64
import copy
import importlib.util
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("check_widgets", HERE / "check_widgets.py")
cw = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cw)


def test_pins_are_read_from_the_list_and_url_installs_skipped(tmp_path):
    freeze = tmp_path / "freeze.txt"
    freeze.write_text("# header\nipywidgets==7.7.1\nJinja2==3.1.6\ntorch==2.11.0+cu128\nfoo @ git+https://x/y\n")
    pins = cw.read_pins(freeze)
    assert pins == {"ipywidgets": ("ipywidgets", "7.7.1"), "jinja2": ("jinja2", "3.1.6"),
                    "torch": ("torch", "2.11.0+cu128")}  # fmt: skip
    assert cw.pin(pins, "Jinja2") == "jinja2==3.1.6"
    by_design, unexpected = cw.compare_with_colab({"torch": "2.14.1", "jinja2": "3.1.5", "ipywidgets": "7.7.1"}, pins)
    assert by_design == ["torch 2.14.1 (Colab 2.11.0+cu128)"] and unexpected == ["jinja2 3.1.5 (Colab 3.1.6)"]


def test_the_course_list_copy_has_every_package_the_twin_takes_from_colab():
    pins = cw.read_pins(cw.FREEZE_FILE)  # the in-repo copy: a fresh clone has it
    stack = [cw.pin(pins, name) for name in (*cw.COLAB_KERNEL, *cw.COLAB_NUMERIC, *cw.COLAB_COURSE_DEPS)]
    assert f"ipywidgets=={pins['ipywidgets'][1]}" in stack
    # The check expects ipywidgets 7's model versions: if Colab moves to ipywidgets 8, EXPECTED_MODULES must follow.
    assert pins["ipywidgets"][1].startswith("7.")


def _model(name, module="@jupyter-widgets/controls", version="1.5.0", **state):
    return {"model_name": name, "model_module": module, "model_module_version": version, "state": state}


def _executed_notebook(path: Path, controls="1.5.0", error=False) -> Path:
    models = {"layout": _model("LayoutModel", "@jupyter-widgets/base", "1.2.0")}
    children = []
    for name, count in cw.EXPECTED_MODELS.items():
        for i in range(count - (name == "VBoxModel")):
            extra = {"description": "xy"[i], "min": 0, "max": 9, "value": 4} if name == "IntSliderModel" else {}
            models[f"{name}{i}"] = _model(name, version=controls, layout="IPY_MODEL_layout", **extra)
            children.append(f"IPY_MODEL_{name}{i}")
    models["ImageModel0"]["state"]["format"] = "jpeg"
    jpeg = base64.b64encode(b"\xff\xd8 a jpeg").decode()
    models["ImageModel0"]["buffers"] = [{"encoding": "base64", "path": ["value"], "data": jpeg}]
    models["root"] = _model("VBoxModel", version=controls, children=children)
    models["tqdm"] = _model("FloatProgressModel")
    probe = {"frontend": "sliders", "versions": {"ipywidgets": "7.7.1"}}
    view = {"model_id": "root", "version_major": 2, "version_minor": 0}
    cells = [
        {"cell_type": "code", "execution_count": 1, "source": ["pg = PromptPlayground(p, demo)\n", "pg"],
         "outputs": [{"output_type": "stream", "name": "stdout", "text": ["frontend: sliders\n"]},
                     {"output_type": "display_data", "metadata": {},
                      "data": {"text/plain": ["VBox()"], "application/vnd.jupyter.widget-view+json": view}}]},
        {"cell_type": "code", "execution_count": 2, "source": ["probe"],
         "outputs": [{"output_type": "stream", "name": "stdout", "text": ["COLAB_TWIN_PROBE " + json.dumps(probe)]}]},
    ]  # fmt: skip
    if error:
        cells[1]["outputs"].append({"output_type": "error", "ename": "TraitError", "evalue": "bad", "traceback": []})
    state = {"state": models, "version_major": 2, "version_minor": 0}
    nb = {"cells": cells, "metadata": {"widgets": {"application/vnd.jupyter.widget-state+json": state}}}
    path.write_text(json.dumps(nb))
    return path


def test_a_rendered_playground_passes_and_its_tree_is_reported(tmp_path):
    found = cw.inspect(_executed_notebook(tmp_path / "ok.ipynb"))
    assert cw.verdict(found, "sliders") == []
    tree = found["playground_tree"]
    assert tree["root"] == "VBoxModel" and tree["models"]["ButtonModel"] == 6 and tree["models"]["LayoutModel"] == 1
    assert tree["module_versions"] == {"@jupyter-widgets/base": ["1.2.0"], "@jupyter-widgets/controls": ["1.5.0"]}
    assert tree["image_jpeg_bytes"] > 0 and tree["sliders"] == {"x": [0, 9, 4], "y": [0, 9, 4]}
    assert found["other_widget_models"] == {"FloatProgressModel (@jupyter-widgets/controls 1.5.0)": 1}
    assert found["playground_cell_printed"] == "frontend: sliders"


def test_errors_ipywidgets_8_models_and_a_missing_view_fail(tmp_path):
    problems = cw.verdict(cw.inspect(_executed_notebook(tmp_path / "e.ipynb", error=True)), "sliders")
    assert any("TraitError" in p for p in problems)
    problems = cw.verdict(cw.inspect(_executed_notebook(tmp_path / "v8.ipynb", controls="2.0.0")), "sliders")
    assert any("ipywidgets 7" in p for p in problems)
    assert any("frontend used" in p for p in cw.verdict(cw.inspect(tmp_path / "v8.ipynb"), "click"))
    nb = json.loads((tmp_path / "e.ipynb").read_text())
    no_view = copy.deepcopy(nb)
    no_view["cells"][0]["outputs"] = no_view["cells"][0]["outputs"][:1]
    (tmp_path / "nv.ipynb").write_text(json.dumps(no_view))
    problems = cw.verdict(cw.inspect(tmp_path / "nv.ipynb"), "sliders")
    assert any("widget-view+json" in p for p in problems)
