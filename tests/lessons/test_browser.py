"""The prompt playground in a real browser: JupyterLab + headless Chromium, driven like a student would.

Papermill proves that the playground's Python side runs headless; it cannot prove that a click in a
browser reaches the model and that the mask on screen follows. This test starts JupyterLab on
127.0.0.1 (throwaway token, every Jupyter/IPython config dir in a temporary folder), opens
``tests/lessons/browser/playground_test.ipynb`` in Chromium (Debian's ``chromium``, driven by Playwright; no
browser is ever downloaded), runs it from the Run menu and then clicks, drags, types and presses the
widget's buttons. After every action the Dice / IoU / area / prompt read-out on the page must equal
what the same prompt gives in this process (same predictor, case and prompts, from Python).

It skips when Chromium or Playwright is missing, unless ``SAMCOURSE_REQUIRE_BROWSER=1`` (CI) turns
that into a failure. A screenshot of the widget lands in ``outputs/browser/``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import psutil
import pytest

from utils import datasets, machine, models
from utils.lessons.playground import PromptPlayground
from utils.prompts import box_from_mask, points_from_mask

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TEST_NOTEBOOK = Path(__file__).resolve().parent / "browser" / "playground_test.ipynb"
REQUIRE_BROWSER = os.environ.get("SAMCOURSE_REQUIRE_BROWSER", "").strip() == "1"
INSTALL_HINTS = {
    "chromium": "`sudo apt-get install -y chromium` (Debian's package; the test never downloads a browser)",
    "playwright": "`.venv/bin/pip install -r requirements-test.txt` (`make test` does this)",
}
# Generous on a busy 2-core machine; each failure message says what did not show up.
SERVER_TIMEOUT_S = 90
WIDGET_TIMEOUT_S = 150  # kernel start + imports + LiteMedSAM load + one encoder call
STEP_TIMEOUT_S = 30  # one prompt edit: decoder (~0.1 s) + redraw + two websocket trips
T = TypeVar("T")


def _unavailable(reason: str) -> NoReturn:
    """Skip, except where CI demands the browser test (a silent skip there would hide a broken widget)."""
    if REQUIRE_BROWSER:
        pytest.fail(f"{reason} — and SAMCOURSE_REQUIRE_BROWSER=1 forbids skipping", pytrace=False)
    pytest.skip(reason)


def _has_playwright() -> bool:
    return importlib.util.find_spec("playwright") is not None


@pytest.fixture(scope="module")
def chromium() -> str:
    """The system Chromium's path; skip (or fail under CI) saying how to install what is missing."""
    found = {"chromium": shutil.which("chromium") is not None, "playwright": _has_playwright()}
    missing = [name for name, ok in found.items() if not ok]
    if missing:
        how = "; ".join(f"{name}: {INSTALL_HINTS[name]}" for name in missing)
        _unavailable(f"the browser test needs {' and '.join(missing)}. Install {how}")
    return shutil.which("chromium")


# ------------------------------------------------------------------------------------ the server
@dataclass
class JupyterServer:
    """A running JupyterLab: its process, where it listens, its token, and its log file."""

    process: subprocess.Popen
    port: int
    token: str
    root: Path
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, n: int = 30) -> str:
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return "\n".join(lines[-n:])

    def api(self, path: str, body: dict | None = None) -> Any:
        """Call the server's REST API with the token (loopback, never through a proxy)."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        request = urllib.request.Request(
            f"{self.base_url}/api/{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with opener.open(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def wait_ready(self, timeout: float = SERVER_TIMEOUT_S) -> None:
        """Poll the REST API until it answers or the server dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"JupyterLab exited with code {self.process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                self.api("status")
                return
            time.sleep(0.25)
        raise AssertionError(f"JupyterLab did not answer on {self.base_url} within {timeout} s:\n{self.log_tail()}")

    def start_kernel(self, notebook: str) -> None:
        """Start the notebook's python3 kernel (the server's own interpreter) before the page opens it.

        Opening a notebook without a session can race the kernel-spec list and ask "Select Kernel"
        in a dialog; with a session already there, JupyterLab simply connects to it.
        """
        self.api("sessions", {"path": notebook, "type": "notebook", "name": notebook, "kernel": {"name": "python3"}})


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    """Stop the server, its process group and its kernels (kernels run in sessions of their own)."""
    try:
        family = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.terminate()
    _, alive = psutil.wait_procs(family, timeout=10)
    for member in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


@contextlib.contextmanager
def jupyter_lab(workdir: Path) -> Iterator[JupyterServer]:
    """JupyterLab on 127.0.0.1 with the course venv's python, isolated config, always shut down."""
    root = workdir / "notebooks"
    root.mkdir()
    shutil.copy(TEST_NOTEBOOK, root / TEST_NOTEBOOK.name)
    isolated = {
        "JUPYTER_CONFIG_DIR": "config",
        "JUPYTER_DATA_DIR": "data",
        "JUPYTER_RUNTIME_DIR": "runtime",
        "JUPYTERLAB_SETTINGS_DIR": "lab-settings",
        "JUPYTERLAB_WORKSPACES_DIR": "lab-workspaces",
        "IPYTHONDIR": "ipython",
    }
    environment = {**os.environ, **{key: str(workdir / name) for key, name in isolated.items()}}
    # No "get Jupyter news?" toast over the page, and no update check (there is no network in CI).
    notification = workdir / "lab-settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text('{"fetchNews": "false", "checkForUpdates": false}')
    port, token = _free_port(), secrets.token_hex(16)
    command = [
        sys.executable,  # the course venv: the notebook's python3 kernel runs this interpreter too
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.allow_root=True",  # CI runs as root; harmless otherwise
        "--ServerApp.terminals_enabled=False",
        f"--ServerApp.root_dir={root}",
        f"--IdentityProvider.token={token}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]
    log = workdir / "jupyterlab.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, cwd=root, env=environment, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield JupyterServer(process, port, token, root, log)
    finally:
        _stop(process)


# ---------------------------------------------------------------------------- what is on screen
_READ_DISPLAY = """() => {
  const text = (selector) => document.querySelector(selector)?.textContent.trim() ?? null;
  const status = document.querySelector(".sam-playground-status");
  return {
    dice: text(".sam-playground-dice"),
    iou: text(".sam-playground-iou"),
    area: text(".sam-playground-area"),
    points: text(".sam-playground-points"),
    box: status ? status.textContent.includes("+ box") : null,
    first_iou_head: text(".sam-playground-scores tr:nth-child(2) td:nth-child(2)"),
  };
}"""

# Pixels clearly tinted with the prediction's dodger blue (#1E90FF): grey scan pixels have r≈g≈b,
# the gold outline, green star and magenta box all fail b - r > 60 and b - g > 20.
_COUNT_BLUE = """(canvas) => {
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 2] - data[i] > 60 && data[i + 2] - data[i + 1] > 20) n++;
  }
  return n;
}"""


_WIDGET_READY = """() => {
  const canvas = document.querySelector("canvas.sam-playground-canvas");  // style.width is set once drawn
  return canvas !== null && canvas.style.width !== "" && document.querySelector(".sam-playground-dice") !== null;
}"""


def expected_display(pg: PromptPlayground) -> dict[str, Any]:
    """What the widget's status line should read for ``pg``'s state (as utils.lessons.playground.views formats it)."""
    return {
        "dice": f"{pg.dice:.3f}",
        "iou": f"{pg.iou:.3f}",
        "area": str(pg.area),
        "points": str(len(pg.points)),
        "box": pg.box is not None,
        "first_iou_head": f"{pg.scores[0]:.3f}" if len(pg.scores) else None,
    }


def _matches(shown: dict[str, Any], expected: dict[str, Any]) -> bool:
    """Equal, allowing one unit in the last displayed digit of the three-decimal numbers (rounding)."""
    for key, value in expected.items():
        got = shown.get(key)
        if key in ("dice", "iou", "first_iou_head") and value is not None and got is not None:
            try:
                if abs(float(got) - float(value)) > 0.0011:
                    return False
            except ValueError:
                return False
        elif got != value:
            return False
    return True


def wait_for(
    page, probe: Callable[[], T], ok: Callable[[T], bool], timeout: float, what: str, every_s: float = 0.1
) -> T:
    """Poll ``probe`` until ``ok``; on timeout fail saying what was awaited and what was seen last."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last seen: {value!r}")
        page.wait_for_timeout(1000 * every_s)


# ----------------------------------------------------------------------------- the page, driven
class PlaygroundPage:
    """The playground inside a JupyterLab page, driven with the mouse and keyboard as a student would."""

    def __init__(self, page, image_shape: tuple[int, ...]) -> None:
        self.page = page
        self.height, self.width = image_shape[:2]
        self.canvas = page.locator("canvas.sam-playground-canvas")

    def wait(
        self,
        probe: Callable[[], T],
        ok: Callable[[T], bool],
        what: str,
        timeout: float = STEP_TIMEOUT_S,
        every_s: float = 0.1,
    ) -> T:
        return wait_for(self.page, probe, ok, timeout, what, every_s)

    def wait_for_widget(self) -> None:
        """The canvas with its first picture drawn; an error in the notebook fails at once, with its traceback."""
        # Errors render as stderr text (as warnings do): a traceback header tells them apart.
        errors = self.page.locator(
            ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
            has_text="Traceback (most recent call last)",
        )

        def probe() -> str:
            if errors.count():
                raise AssertionError(f"the test notebook raised:\n{errors.first.inner_text()}")
            ready = self.page.evaluate(_WIDGET_READY)
            return (
                "ready" if ready else "no canvas.sam-playground-canvas with a picture, or no span.sam-playground-dice"
            )

        # Polled slowly: this wait spans the kernel's imports and encoder call, and every poll costs CPU.
        self.wait(probe, lambda state: state == "ready", "the playground widget to render", WIDGET_TIMEOUT_S, 0.5)
        self.canvas.scroll_into_view_if_needed()

    def at(self, x: float, y: float) -> tuple[float, float]:
        """Page coordinates of image pixel (x, y)'s centre: the widget maps a click's fraction of the canvas box."""
        rect = self.canvas.bounding_box()
        return rect["x"] + (x + 0.5) / self.width * rect["width"], rect["y"] + (y + 0.5) / self.height * rect["height"]

    def click(self, x: int, y: int) -> None:
        self.page.mouse.click(*self.at(x, y))

    def drag(self, x0: int, y0: int, x1: int, y1: int) -> None:
        self.page.mouse.move(*self.at(x0, y0))
        self.page.mouse.down()
        self.page.mouse.move(*self.at(x1, y1), steps=8)
        self.page.mouse.up()

    def press(self, button: str) -> None:
        self.page.click(f"button.sam-playground-{button}")

    def type_box(self, box: list[int]) -> None:
        field = self.page.locator(".sam-playground-box-text input")
        field.fill(", ".join(map(str, box)))
        field.press("Enter")  # the text box syncs on Enter (continuous_update=False)

    def slide_to(self, axis: str, value: int) -> None:
        """Type into the slider's editable read-out: the keyboard path, no pixel-exact dragging."""
        readout = self.page.locator(f".sam-playground-{axis} .widget-readout")
        readout.click()
        self.page.keyboard.press("Control+A")
        self.page.keyboard.type(str(value))
        self.page.keyboard.press("Enter")
        self.wait(readout.inner_text, lambda text: text.strip() == str(value), f"the {axis} slider to read {value}")

    def add_point_with_sliders(self, x: int, y: int) -> None:
        self.slide_to("x", x)
        self.slide_to("y", y)
        self.press("add-positive")

    def read(self) -> dict[str, Any]:
        return self.page.evaluate(_READ_DISPLAY)

    def blue_pixels(self) -> int:
        return self.canvas.evaluate(_COUNT_BLUE)

    def expect(self, what: str, expected: dict[str, Any]) -> dict[str, Any]:
        return self.wait(
            self.read, lambda shown: _matches(shown, expected), f"the display after {what} to read {expected}"
        )


def _open_and_run(page, server: JupyterServer) -> None:
    """Open the test notebook on its running kernel and run every cell from JupyterLab's Run menu."""
    page.goto(f"{server.base_url}/lab/tree/{TEST_NOTEBOOK.name}?token={server.token}")
    page.wait_for_selector(".jp-NotebookPanel", timeout=SERVER_TIMEOUT_S * 1000)
    try:
        page.wait_for_function(
            "() => /Python 3.*Idle/.test(document.querySelector('#jp-main-statusbar')?.innerText ?? '')",
            polling=250,  # not every animation frame: innerText forces a layout
            timeout=SERVER_TIMEOUT_S * 1000,
        )
    except Exception as error:
        raise AssertionError("the status bar never showed the notebook's Python 3 kernel as Idle") from error
    page.click('.lm-MenuBar-item:has-text("Run")')
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()


@dataclass
class Step:
    """One student action: what it is, how the browser does it, the same edit from Python, an extra check."""

    what: str
    in_browser: Callable[[], None]
    in_python: Callable[[], Any]
    then: Callable[[dict[str, Any]], None] | None = None


# ------------------------------------------------------------------------------------ the test
@pytest.fixture(scope="module")
def thalamus() -> datasets.Case:
    try:
        return datasets.colin27_cases("thalamus", n_slices=1)[0]  # the same line as the test notebook
    except FileNotFoundError as missing:
        _unavailable(str(missing))


def test_playground_clicks_reach_the_model_in_jupyterlab(
    chromium: str, thalamus: datasets.Case, tmp_path: Path
) -> None:
    """Click, drag, sliders, box text, undo, reset in the browser: each shows what Python computes for it."""
    from playwright.sync_api import sync_playwright

    height, width = thalamus.image.shape[:2]
    (center,), _ = points_from_mask(thalamus.mask)
    cx, cy = (int(v) for v in center)
    box = [int(v) for v in box_from_mask(thalamus.mask)]
    typed_box = [max(box[0] - 3, 0), max(box[1] - 3, 0), min(box[2] + 3, width - 1), min(box[3] + 3, height - 1)]
    screenshots = machine.output_dir("browser")
    screenshots.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    started = time.perf_counter()

    with jupyter_lab(tmp_path) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True)  # while the server starts
        server.wait_ready()
        server.start_kernel(TEST_NOTEBOOK.name)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(STEP_TIMEOUT_S * 1000)
        try:
            _open_and_run(page, server)
            timings["run_all_clicked"] = time.perf_counter() - started
            # While the kernel works: the reference, i.e. the same predictor, case and prompts in this process.
            mirror = PromptPlayground(models.load_predictor("litemedsam", device="cpu"), thalamus, frontend="click")
            playground = PlaygroundPage(page, thalamus.image.shape)
            playground.wait_for_widget()
            timings["widget_ready"] = time.perf_counter() - started

            kernel_line = page.locator(".jp-OutputArea-output", has_text="kernel python:").first.inner_text()
            assert kernel_line.strip() == f"kernel python: {sys.executable}", "the kernel is not the course venv"
            empty = expected_display(mirror)
            playground.expect("running the notebook (no prompt yet)", empty)
            assert playground.blue_pixels() < 20, "the canvas shows a blue mask before any prompt"

            def decoder_ran(shown: dict[str, Any]) -> None:
                # LiteMedSAM is box-trained: one point finds ~nothing, but the click reached the decoder.
                assert shown["points"] == "1" and shown["first_iou_head"] is not None, shown

            def mask_on_canvas(shown: dict[str, Any]) -> None:
                assert float(shown["dice"]) > 0.5, f"a tight box should find the thalamus: {shown}"
                least = 0.5 * mirror.area * mirror.scale**2  # display pixels of the mask, at least half tinted
                playground.wait(
                    playground.blue_pixels, lambda n: n >= least, f">= {least:.0f} blue pixels on the canvas"
                )

            def screenshot(_shown: dict[str, Any]) -> None:
                page.locator(".sam-playground").screenshot(path=str(screenshots / "playground_jupyterlab.png"))

            steps = [
                Step(f"a click at ({cx}, {cy})", lambda: playground.click(cx, cy), lambda: mirror.add_point(cx, cy),
                     decoder_ran),
                Step("reset", lambda: playground.press("reset"), mirror.reset),
                Step(f"a box drag {box}", lambda: playground.drag(*box), lambda: mirror.set_box(*box), mask_on_canvas),
                Step("undo (back to after the reset)", lambda: playground.press("undo"), mirror.undo),
                Step("undo (the reset itself: the point is back)", lambda: playground.press("undo"), mirror.undo),
                Step("reset", lambda: playground.press("reset"), mirror.reset),
                Step(f"typing the box {typed_box}", lambda: playground.type_box(typed_box),
                     lambda: mirror.set_box(*typed_box)),
                Step(f"sliders x={cx}, y={cy} and '+ point'", lambda: playground.add_point_with_sliders(cx, cy),
                     lambda: mirror.add_point(cx, cy), screenshot),
                Step("undo (the slider point)", lambda: playground.press("undo"), mirror.undo),
                Step("reset", lambda: playground.press("reset"), mirror.reset),
            ]  # fmt: skip
            previous = empty
            for step in steps:
                step.in_browser()
                step.in_python()
                expected = expected_display(mirror)
                assert expected != previous, f"test sequence: {step.what} should change the display"
                shown = playground.expect(step.what, expected)
                if step.then is not None:
                    step.then(shown)
                previous = expected
            playground.wait(playground.blue_pixels, lambda n: n < 20, "the mask to leave the canvas after reset")
        except BaseException as error:
            failure = screenshots / "failure_jupyterlab.png"
            with contextlib.suppress(Exception):
                page.screenshot(path=str(failure), full_page=True)
            error.add_note(f"page screenshot: {failure}\nJupyterLab log (last lines):\n{server.log_tail(15)}")
            raise
        finally:
            browser.close()
    timings["total"] = time.perf_counter() - started
    print(f"\n[browser] {len(steps)} actions checked; seconds since start: {timings}")
