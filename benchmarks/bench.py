"""``make bench``: measured speed of the course's models against the hardware floor.

For each model: image-encoder and prompt→mask latency (median of several runs after a warm-up), the
encoder's FLOPs (torch's FlopCounterMode), a large matmul's achieved FLOP/s measured in the same run
(the "floor" is FLOPs / that rate: the time the encoder would take if it ran at matmul speed), and
peak memory. Then the course-level numbers: evaluation throughput, playground re-prompt latency,
adaptation step time and memory per strategy — each section runs when its utils module exists.

Writes ``outputs/bench/results.json`` and ``benchmarks/RESULTS.md`` (the README includes it).
``--gpu`` runs the same suite on CUDA with bf16 autocast, against a bf16 matmul floor.
These are measurements, not tests: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import psutil
import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from utils.machine import output_dir, to_jsonable  # noqa: E402
from utils.models import CoursePredictor, MeaninglessModelWarning, count_parameters, load_sam  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_times(fn, device: torch.device, repeats: int, warmup: int = 1) -> list[float]:
    """Wall times of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def median_time(fn, device: torch.device, repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    return statistics.median(run_times(fn, device, repeats, warmup))


def matmul_flops_per_s(device: torch.device, dtype: torch.dtype, size: int, repeats: int = 5) -> float:
    """Achieved FLOP/s of a size×size matmul: the practical ceiling of this device in this run."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    seconds = median_time(lambda: a @ b, device, repeats, warmup=2)
    return 2 * size**3 / seconds


def _autocast(device: torch.device, enabled: bool):
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def _test_image(size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    from utils.phantoms import make_phantom

    case = make_phantom("mri", seed=0, size=size)
    return case.image, case.mask


def bench_model(name: str, device: torch.device, repeats: int, amp: bool, floor_flops: float) -> dict:
    """Encoder/decoder latency, FLOPs, floor ratio and peak memory for one registry model."""
    rss_before = _rss_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MeaninglessModelWarning)
        if name == "sam_vit_b":  # compute does not depend on the weights: random init, no download
            from segment_anything import sam_model_registry

            sam = sam_model_registry["vit_b"]().to(device).eval()
        else:
            sam = load_sam(name, device=device)
    size = sam.image_encoder.img_size
    x = torch.randn(1, 3, size, size, device=device)
    with FlopCounterMode(display=False) as counter, torch.inference_mode(), _autocast(device, amp):
        sam.image_encoder(x)
    flops = counter.get_total_flops()

    def encode():
        with torch.inference_mode(), _autocast(device, amp):
            sam.image_encoder(x)

    # The FLOP-counting pass above already warmed the CPU path up (ViT-B: 20 s a run on 2 cores).
    encoder_s = median_time(encode, device, repeats, warmup=0 if device.type == "cpu" else 1)
    predictor = CoursePredictor(sam, name=name)
    image, mask = _test_image(256)
    predictor.set_image(image)
    ys, xs = np.nonzero(mask)
    box = np.array([xs.min(), ys.min(), xs.max(), ys.max()], float)
    with FlopCounterMode(display=False) as counter:
        predictor.predict(box=box, multimask_output=False)
    decoder_flops = counter.get_total_flops()
    decoder_s = median_time(lambda: predictor.predict(box=box, multimask_output=False), device, max(5, repeats * 4))
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else _rss_mb() - rss_before
    floor_s = flops / floor_flops
    return {
        "model": name,
        "params_m": count_parameters(sam) / 1e6,
        "input": size,
        "encoder_gflop": flops / 1e9,
        "encoder_ms": 1000 * encoder_s,
        "floor_ms": 1000 * floor_s,
        "measured_over_floor": encoder_s / floor_s,
        "decoder_gflop": decoder_flops / 1e9,
        "decoder_ms": 1000 * decoder_s,
        "decoder_over_floor": decoder_s / (decoder_flops / floor_flops),
        "peak_mem_mb": peak,
    }


# What the course's code does: CoursePredictor runs under torch.inference_mode, and on the CPU
# utils.models.load_sam stores weights channels-last (adopted after this table showed it faster).
USED_BY_COURSE = ("inference_mode", "inference_mode, channels_last")


def bench_speedups(device: torch.device, repeats: int) -> list[dict]:
    """Try the cheap speed-ups on LiteMedSAM's encoder; a row per variant with its latency."""
    # The baseline is the plain (contiguous) layout, whatever load_sam chose.
    sam = load_sam("litemedsam", device=device).to(memory_format=torch.contiguous_format)
    x = torch.randn(1, 3, 256, 256, device=device)
    rows = []

    def timed(label: str, fn) -> None:
        times = [1000 * t for t in run_times(fn, device, repeats)]
        rows.append({"variant": label, "encoder_ms": statistics.median(times), "min_ms": min(times),
                     "max_ms": max(times), "used_by_course": label in USED_BY_COURSE})  # fmt: skip

    def run_no_grad():
        with torch.no_grad():
            sam.image_encoder(x)

    def run_inference():
        with torch.inference_mode():
            sam.image_encoder(x)

    timed("no_grad (baseline)", run_no_grad)
    timed("inference_mode", run_inference)
    if device.type == "cpu":
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        timed("inference_mode, 1 thread", run_inference)
        torch.set_num_threads(threads)
    sam_cl = sam.to(memory_format=torch.channels_last)
    x_cl = x.to(memory_format=torch.channels_last)

    def run_channels_last():
        with torch.inference_mode():
            sam_cl.image_encoder(x_cl)

    timed("inference_mode, channels_last", run_channels_last)
    if device.type == "cuda":

        def run_bf16():
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
                sam.image_encoder(x)

        timed("inference_mode, bf16 autocast", run_bf16)
    base = rows[0]
    for row in rows:
        row["speedup"] = base["encoder_ms"] / row["encoder_ms"]
        # Worth keeping: >5% faster, and every run of it beat every run of the baseline (beyond noise).
        row["worth_keeping"] = row["speedup"] > 1.05 and row["max_ms"] < base["min_ms"]
    return rows


SECTIONS = ("models", "speedups", "evaluate", "playground", "adaptation")

# Everything mode costs one decoder pass per grid point; an 8x8 grid keeps `make bench` within its
# 10 minutes on 2 cores (the notebooks use utils.evaluate's 16x16 default).
BENCH_AMG_GRID = 8


def bench_evaluate(device: torch.device) -> dict | None:
    """Images/s of utils.evaluate with every mode on LiteMedSAM, and encoder calls per image."""
    try:
        from utils import evaluate as ev
    except ImportError:
        return None
    from utils.phantoms import make_phantom

    cases = [make_phantom(style, seed=1, size=256) for style in ("mri", "ct", "ultrasound")]
    predictor = CoursePredictor(load_sam("litemedsam", device=device), name="litemedsam")
    modes = tuple(ev.MODES)[:10]
    start = time.perf_counter()
    ev.evaluate(predictor, cases, modes=modes, seed=0, progress=False, amg_kwargs={"points_per_side": BENCH_AMG_GRID})
    seconds = time.perf_counter() - start
    return {
        "cases": len(cases),
        "modes": len(modes),
        "amg_grid": BENCH_AMG_GRID,
        "images_per_s": len(cases) / seconds,
        "encoder_calls_per_image": predictor.encoder_calls / len(cases),
    }


def bench_playground(device: torch.device, model: str = "litemedsam", rounds: int = 10) -> dict | None:
    """First-mask and re-prompt latency of the prompt playground, two ways in the same run.

    Re-prompt is timed on two paths: headless (``set_box`` on a playground whose widget was never
    shown: the decode and the Dice/IoU bookkeeping) and a student's (the widget built, so each edit also
    redraws the picture, encodes the JPEG and refreshes the panel). Each path runs with the playground's
    decoder (``ReusingDecoder``: the per-image half of the mask decoder computed once) and with
    ``predictor.predict`` on every edit, alternated edit by edit, so the ratio survives a machine
    whose speed drifts. Both decoders give the same masks (tests/lessons/test_playground_state.py).
    """
    try:
        from utils.lessons.playground import PromptPlayground
    except ImportError:
        return None
    from utils.models import CachedPredictor
    from utils.phantoms import make_phantom

    case = make_phantom("mri", seed=2, size=256)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MeaninglessModelWarning)
        predictor = CachedPredictor(CoursePredictor(load_sam(model, device=device), name=model))
    ys, xs = np.nonzero(case.mask)
    start = time.perf_counter()
    headless = PromptPlayground(predictor, case, frontend="sliders")
    headless.set_box(float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))
    first = time.perf_counter() - start
    paths = {"headless": headless}
    try:
        widget = PromptPlayground(predictor, case)  # the frontend a student gets here; the same image: no encoding
        widget.widget  # noqa: B018 - building it makes every edit redraw, as in a notebook
        paths["widget"] = widget
    except ImportError:  # no ipywidgets: the headless path only
        pass
    decoders = {name: playground.decoder for name, playground in paths.items()}
    times: dict[tuple[str, str], list[float]] = {(p, d): [] for p in paths for d in ("reusing", "predict")}
    edits = 0

    def edit(path: str, decoder: str) -> float:
        nonlocal edits
        edits += 1
        playground = paths[path]
        playground.decoder = decoders[path] if decoder == "reusing" else None  # None: predictor.predict
        begin = time.perf_counter()
        playground.set_box(float(xs.min() - edits % 3), float(ys.min()), float(xs.max() + edits % 2), float(ys.max()))
        return 1000 * (time.perf_counter() - begin)

    order = [(p, d) for p in paths for d in ("reusing", "predict")]
    for key in order:
        edit(*key)  # warm-up
    for turn in range(rounds):
        for key in order if turn % 2 == 0 else order[::-1]:
            times[key].append(edit(*key))
    for path, playground in paths.items():
        playground.decoder = decoders[path]
    ratios = [old / new for old, new in zip(times[("headless", "predict")], times[("headless", "reusing")])]
    result = {
        "model": model,
        "rounds": rounds,
        "first_mask_ms": 1000 * first,
        "reprompt_ms": statistics.median(times[("headless", "reusing")]),
        "reprompt_predict_ms": statistics.median(times[("headless", "predict")]),
        "reprompt_speedup": statistics.median(ratios),
        "reprompt_speedup_min": min(ratios),
        "reprompt_speedup_max": max(ratios),
    }
    if "widget" in paths:
        result["widget_frontend"] = paths["widget"].frontend
        result["widget_reprompt_ms"] = statistics.median(times[("widget", "reusing")])
        result["widget_reprompt_predict_ms"] = statistics.median(times[("widget", "predict")])
        result["widget_redraw_ms"] = statistics.median(paths["widget"].render_ms[-2 * rounds :])
    return result


def _adaptation_run(strategy: str, device_name: str, steps: int) -> dict:
    """One strategy's training steps, in its own process (see bench_adaptation)."""
    from utils import training
    from utils.phantoms import make_phantom

    device = torch.device(device_name)
    cases = [make_phantom("ultrasound", seed=s, size=256) for s in range(4)]
    sam = load_sam("litemedsam", device=device)
    result = training.train(
        sam, cases[:2], cases[2:], strategy_name=strategy, steps=steps, batch_size=2, eval_every=0, seed=0,
        device=device, progress=False,
    )  # fmt: skip
    return {
        "strategy": strategy,
        "step_time_s": result.step_time_s,
        "peak_mem_mb": result.peak_mem_mb,
        "extra_mem_mb": result.extra_mem_mb,
        "memory_metric": result.memory_metric,
    }


def bench_adaptation(device: torch.device, steps: int) -> list[dict] | None:
    """Step time and memory per strategy relative to full fine-tuning (LiteMedSAM, batch 2).

    Each strategy runs in a fresh process: a process's resident memory rarely shrinks, so on the CPU
    strategies measured one after another in one process would inherit each other's peaks. Memory
    compared is what training added (``extra_mem_mb``: CUDA allocated memory, or RSS growth on the CPU).
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    try:
        from utils import training  # noqa: F401
    except ImportError:
        return None
    rows = []
    context = multiprocessing.get_context("spawn")
    for strategy in ("decoder_only", "adapter", "lora", "svd", "full"):
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            rows.append(pool.submit(_adaptation_run, strategy, str(device), steps).result())
    full = rows[-1]
    for row in rows:
        row["time_vs_full"] = row["step_time_s"] / full["step_time_s"]
        row["memory_vs_full"] = row["extra_mem_mb"] / full["extra_mem_mb"] if full["extra_mem_mb"] > 0 else None
    return rows


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def markdown(report: dict) -> str:
    lines = [
        f"Measured {report['date']} on {report['device_name']} (`make bench{' --gpu' if report['gpu'] else ''}`).",
        "",
        f"Matmul floor: {report['floor_tflops']:.2f} TFLOP/s ({report['floor_dtype']}).",
    ]
    if report.get("models"):
        lines += [
            "",
            "| model | params (M) | input | encoder GFLOP | encoder ms | floor ms | measured / floor |"
            " prompt→mask GFLOP | prompt→mask ms | measured / floor | peak MB |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
    for r in report.get("models", []):
        lines.append(
            f"| {r['model']} | {r['params_m']:.1f} | {r['input']} | {r['encoder_gflop']:.1f} | {r['encoder_ms']:.0f} |"
            f" {r['floor_ms']:.0f} | {r['measured_over_floor']:.1f}× | {r['decoder_gflop']:.2f} |"
            f" {r['decoder_ms']:.1f} | {r['decoder_over_floor']:.1f}× | {r['peak_mem_mb']:.0f} |"
        )
    if report.get("speedups"):
        lines += [
            "",
            "| LiteMedSAM encoder variant | ms (median) | min–max ms | speed-up | faster beyond noise |"
            " used by the course |",
            "|---|---|---|---|---|---|",
        ]
        for r in report["speedups"]:
            lines.append(
                f"| {r['variant']} | {r['encoder_ms']:.0f} | {r['min_ms']:.0f}–{r['max_ms']:.0f} |"
                f" {r['speedup']:.2f}× | {_yes(r['worth_keeping'])} | {_yes(r['used_by_course'])} |"
            )
    if report.get("evaluate"):
        e = report["evaluate"]
        lines += [
            "",
            f"`utils.evaluate`: {e['images_per_s']:.2f} images/s with {e['modes']} modes (everything mode on a "
            f"{e['amg_grid']}×{e['amg_grid']} grid); "
            f"{e['encoder_calls_per_image']:.0f} encoder call(s) per image.",
        ]
    if report.get("playground"):
        p = report["playground"]
        lines += [
            "",
            f"Prompt playground ({p['model']}): first mask {p['first_mask_ms']:.0f} ms, re-prompt "
            f"{p['reprompt_ms']:.0f} ms ({p['reprompt_predict_ms']:.0f} ms with `predictor.predict` on every edit; "
            f"paired ratio {p['reprompt_speedup']:.2f}×, range {p['reprompt_speedup_min']:.2f}–"
            f"{p['reprompt_speedup_max']:.2f}×, {p['rounds']} alternated edits each).",
        ]
        if "widget_reprompt_ms" in p:
            lines[-1] += (
                f" With the widget shown ({p['widget_frontend']} frontend), an edit (decode + redraw) takes "
                f"{p['widget_reprompt_ms']:.0f} ms "
                f"({p['widget_reprompt_predict_ms']:.0f} ms with `predictor.predict`); the redraw alone "
                f"{p['widget_redraw_ms']:.0f} ms."
            )
    if report.get("adaptation"):
        lines += [
            "",
            "| strategy | step s | peak MB | added by training MB | time vs full | added memory vs full |",
            "|---|---|---|---|---|---|",
        ]
        for r in report["adaptation"]:
            mem = f"{r['memory_vs_full']:.2f}" if r["memory_vs_full"] is not None else "-"
            lines.append(
                f"| {r['strategy']} | {r['step_time_s']:.2f} | {r['peak_mem_mb']:.0f} | {r['extra_mem_mb']:.0f} |"
                f" {r['time_vs_full']:.2f} | {mem} |"
            )
    if report.get("section_s"):
        spent = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in report["section_s"].items())
        lines += ["", f"Time per section: {spent}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", action="store_true", help="run on CUDA with bf16 autocast")
    parser.add_argument("--quick", action="store_true", help="tiny_sam only, 1 repeat (to test the script)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset to run")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.sections.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown or not chosen:
        parser.error(f"--sections: unknown {unknown or 'empty list'}; choose from {','.join(SECTIONS)}")
    if args.quick:
        chosen = ["models"]
    if args.gpu and not torch.cuda.is_available():
        print("--gpu: no CUDA device here", file=sys.stderr)
        return 2
    device = torch.device("cuda" if args.gpu else "cpu")
    repeats = 1 if args.quick else args.repeats
    floor_dtype = torch.bfloat16 if args.gpu else torch.float32
    floor = matmul_flops_per_s(device, floor_dtype, 4096 if args.gpu else 2048)
    device_name = (
        torch.cuda.get_device_name(device)
        if args.gpu
        else f"CPU, {os.cpu_count()} cores ({platform.processor() or platform.machine()})"
    )
    names = ("tiny_sam",) if args.quick else ("tiny_sam", "litemedsam", "sam_vit_b")
    report = {
        "date": dt.date.today().isoformat(),
        "device_name": device_name,
        "gpu": args.gpu,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "floor_tflops": floor / 1e12,
        "floor_dtype": str(floor_dtype).replace("torch.", ""),
        "models": [],
    }
    print(f"bench on {device_name}: matmul floor {floor / 1e12:.2f} TFLOP/s", flush=True)

    def run_models() -> list[dict]:
        rows = []
        for name in names:
            row = bench_model(name, device, repeats, amp=args.gpu, floor_flops=floor)
            print(
                f"  {name}: encoder {row['encoder_ms']:.0f} ms ({row['measured_over_floor']:.1f}x floor), "
                f"prompt {row['decoder_ms']:.1f} ms",
                flush=True,
            )
            rows.append(row)
        return rows

    sections = {
        "models": run_models,
        "speedups": lambda: bench_speedups(device, repeats),
        "evaluate": lambda: bench_evaluate(device),
        "playground": lambda: bench_playground(device),
        "adaptation": lambda: bench_adaptation(device, steps=3),
    }
    report["section_s"] = {}
    for section in chosen:
        start = time.perf_counter()
        report[section] = sections[section]()
        report["section_s"][section] = time.perf_counter() - start
        print(f"  {section}: {report['section_s'][section]:.0f} s", flush=True)
    out = args.out or output_dir("bench")
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(to_jsonable(report), indent=2) + "\n")
    table = markdown(report)
    (out / "RESULTS.md").write_text(table)
    if not args.quick and args.out is None and chosen == list(SECTIONS):  # only a whole run replaces the table
        name = "RESULTS_gpu.md" if args.gpu else "RESULTS.md"
        (ROOT / "benchmarks" / name).write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
