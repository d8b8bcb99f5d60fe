"""The survey's map of SAM-for-medical-imaging methods, and where each idea lives in this course.

The course follows Zhang & Jiao, *Towards Segment Anything Model (SAM) for Medical Image Segmentation:
A Survey* (arXiv:2305.03678). :data:`METHODS` holds one :class:`Method` per idea: its family, the idea
in a sentence, one representative paper, the result that paper (or its repository) reports **with the
source of every number** (``—`` where no single number summarises it, with what the paper reports in
words), the failure it addresses (:data:`FAILURES`), and the course notebooks and ``utils`` functions
that implement the idea — or what the course shows instead when it does not implement it.

:data:`NOTEBOOKS` is the course map (stem → one line). Notebook 08 renders both with
:func:`course_map_markdown` and :func:`markdown_table` (notebook links relative to ``notebooks/``,
``utils`` functions linked to their module's source, papers to arXiv or the journal), and
:func:`check_links` proves that every notebook named exists and every function named imports
(``utils.peft.lora`` → :func:`utils.peft.lora`), which the tests also run.

Each method names the survey section its family belongs to (:data:`SURVEY_SECTIONS`), or :data:`ADDED`
when the course adds a family the survey does not have: the survey was last revised in 2023, before
S-SAM, SAM 2 and MedSAM2. The survey's maintained paper list (:data:`SURVEY_PAPER_LIST`) follows
later work.

Numbers are copied from the cited abstract, README or repository notebook, never computed here; the
course's own measurements of the same ideas are in each notebook's ``results.json``.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = [
    "ADDED",
    "FAILURES",
    "METHODS",
    "NOTEBOOKS",
    "PUBLISHED_SHARES",
    "SURVEY",
    "SURVEY_PAPER_LIST",
    "SURVEY_SECTIONS",
    "Method",
    "check_links",
    "course_map_markdown",
    "markdown_table",
    "methods_table",
    "notebooks_for",
    "plot_shares",
    "resolve",
    "share_table",
]

#: The survey the course follows, and its maintained list of papers (updated after the survey's last revision).
SURVEY = "Zhang & Jiao, Towards Segment Anything Model (SAM) for Medical Image Segmentation: A Survey, arXiv:2305.03678"
SURVEY_PAPER_LIST = "https://github.com/YichiZhang98/SAM4MIS"
#: The survey's sections a family of :data:`METHODS` can belong to (by title; the survey numbers them differently
#: across its revisions).
SURVEY_SECTIONS: tuple[str, ...] = (
    "background on SAM",
    "Performance of SAM in medical image segmentation",
    "Adapting SAM to medical image segmentation",
    "future directions",
)
#: ``Method.survey`` of a family the course adds: work that appeared after the survey's last revision (2023).
ADDED = "added by the course (after the survey)"

#: The course's notebooks, in order (stem → what it covers).
NOTEBOOKS: dict[str, str] = {
    "00_setup": "set-up check: run modes, models and data; a first LiteMedSAM segmentation",
    "01_sam_architecture": "SAM's image encoder, prompt encoder and mask decoder, counted and traced",
    "02_prompting_sam": "points, boxes, mask prompts, multimask output, the automatic mask generator, the playground",
    "03_zero_shot_medical": "an evaluation harness (cases × prompt modes, four metrics), published numbers beside ours",
    "04_why_sam_fails": "one factor at a time on phantoms, the domain gap in embedding space, a failure taxonomy",
    "05_adapting_sam": "decoder-only, adapters, LoRA, SVD and full fine-tuning compared on one split",
    "06_medical_foundation_models": "SAM vs LiteMedSAM / MedSAM, uncertainty maps, teaching points by fine-tuning",
    "07_volumetric": "3-D with a 2-D model: a box propagated slice by slice, 3-D Dice and HD95",
    "08_landscape": "this map of the field, an automatic prompt, and exercises that extend the course",
}

#: The failures of zero-shot SAM on medical images that the methods address (key → description).
FAILURES: dict[str, str] = {
    "unknown_accuracy": "nobody knows how well zero-shot SAM does on a task until it is measured",
    "domain_gap": "SAM's encoder was trained on natural photos; medical images look different to it",
    "prompt_ambiguity": "a point (or a loose box) does not say which structure is meant",
    "needs_a_prompt": "every image needs a person to draw a prompt",
    "no_3d_context": "a 2-D model sees one slice at a time and forgets the previous one",
    "silent_errors": "a mask comes with no sign of where it may be wrong",
}


@dataclass(frozen=True)
class Method:
    """One idea from the survey's landscape and where the course implements it."""

    family: str
    idea: str
    paper: str  # short citation: authors, year, name, venue
    url: str  # arXiv abstract page or DOI
    result: str  # what the source reports, numbers verbatim; "—" first when no number summarises it
    sources: tuple[tuple[str, str], ...]  # (label, url) of where each number was read
    addresses: tuple[str, ...]  # keys of FAILURES
    notebooks: tuple[str, ...]  # stems of NOTEBOOKS
    functions: tuple[str, ...]  # dotted names, e.g. "utils.peft.lora"
    in_course: str  # implemented / partly / not implemented, and how
    survey: str  # the survey section of the family (SURVEY_SECTIONS), or ADDED


_MSA_REPO = "https://github.com/KidsWithTokens/Medical-SAM-Adapter/blob/main/guidance"
_SAMMED2D_README = ("SAM-Med2D README", "https://github.com/OpenGVLab/SAM-Med2D")

METHODS: tuple[Method, ...] = (
    Method(
        family="Foundation model",
        idea="A ViT image encoder runs once per image; a prompt encoder and a light mask decoder run once "
        "per prompt. Trained on 11 M natural photos (SA-1B).",
        paper="Kirillov et al. 2023, Segment Anything (ICCV)",
        url="https://arxiv.org/abs/2304.02643",
        result="ViT-B / L / H: 93.7 M / 312.3 M / 641.1 M parameters",
        sources=(("released checkpoints", "https://github.com/facebookresearch/segment-anything"),),
        addresses=(),
        notebooks=("01_sam_architecture", "00_setup"),
        functions=(
            "utils.lessons.anatomy.parameter_table",
            "utils.lessons.anatomy.trace_shapes",
            "utils.models.load_predictor",
        ),
        in_course="implemented: the real model, counted on the meta device and traced with hooks",
        survey=SURVEY_SECTIONS[0],
    ),
    Method(
        family="Empirical benchmark",
        idea="Score SAM without any training on many medical tasks, with prompts simulated from the "
        "ground truth (an oracle annotator).",
        paper="Mazurowski et al. 2023, Medical Image Analysis 89:102918",
        url="https://arxiv.org/abs/2304.10517",
        result="IoU, SAM ViT-H, unweighted mean of 28 tasks: 1 point 0.461, 1 box 0.589",
        sources=(("authors' per-task table", "https://github.com/mazurowski-lab/segment-anything-medical-evaluation"),),
        addresses=("unknown_accuracy",),
        notebooks=("03_zero_shot_medical",),
        functions=("utils.evaluate.evaluate", "utils.published.published_comparison", "utils.evaluate.summarize"),
        in_course="implemented: the same protocol on the course's data, published numbers beside ours",
        survey=SURVEY_SECTIONS[1],
    ),
    Method(
        family="Empirical benchmark: why it fails",
        idea="Relate SAM's failures to properties of the target and the image (size, boundary, contrast).",
        paper="Huang et al. 2024, Segment anything model for medical images? (Medical Image Analysis 92:103061)",
        url="https://arxiv.org/abs/2304.14660",
        result="— (53 public datasets): performance correlates with boundary complexity and intensity "
        "differences; boxes beat Everything mode; fine-tuning raised the average Dice by 4.39 % (ViT-B) "
        "and 6.68 % (ViT-H)",
        sources=(("abstract", "https://arxiv.org/abs/2304.14660"),),
        addresses=("unknown_accuracy", "domain_gap"),
        notebooks=("04_why_sam_fails",),
        functions=("utils.lessons.sweeps.sweep", "utils.lessons.sweeps.curves", "utils.lessons.domain.linear_probe"),
        in_course="implemented differently: one factor at a time on phantoms, where the paper correlates "
        "factors across real data sets",
        survey=SURVEY_SECTIONS[1],
    ),
    Method(
        family="Prompt engineering",
        idea="The prompt decides the answer: a box pins the object down, a single point is ambiguous, "
        "more points help.",
        paper="Cheng et al. 2023, SAM-Med2D (zero-shot SAM baseline)",
        url="https://arxiv.org/abs/2308.16184",
        result="Dice %, SAM at 1024×1024 input: box 74.49, 1 point 36.88, 5 points 47.57",
        sources=(_SAMMED2D_README,),
        addresses=("prompt_ambiguity",),
        notebooks=("02_prompting_sam", "03_zero_shot_medical"),
        functions=(
            "utils.prompts.box_from_mask",
            "utils.prompts.points_from_mask",
            "utils.lessons.playground.PromptPlayground",
        ),
        in_course="implemented: every prompt type, multimask output, the IoU head against the oracle",
        survey=SURVEY_SECTIONS[1],
    ),
    Method(
        family="Auto-prompting",
        idea="Replace the person who prompts: SAM's point grid ('everything' mode), a learned prompt "
        "generator, or another method's coarse mask turned into a box.",
        paper="Shaharabany et al. 2023, AutoSAM",
        url="https://arxiv.org/abs/2306.06370",
        result="— : a trained encoder replaces SAM's prompt encoder; state of the art on several medical "
        "image and video benchmarks without fine-tuning SAM",
        sources=(("abstract", "https://arxiv.org/abs/2306.06370"),),
        addresses=("needs_a_prompt",),
        notebooks=("02_prompting_sam", "03_zero_shot_medical", "08_landscape"),
        functions=(
            "utils.evaluate.evaluate",
            "utils.lessons.autoprompt.auto_box",
            "utils.lessons.autoprompt.compare_prompts",
        ),
        in_course="partly: everything mode (02, 03) and a classical box (Otsu + largest component, here); "
        "no learned prompt generator",
        survey=SURVEY_SECTIONS[2],
    ),
    Method(
        family="Fine-tuning: which parts",
        idea="Freeze the image encoder and train the mask decoder (cheapest: embeddings can be cached), "
        "or add trainable pieces to the encoder too.",
        paper="Gu et al. 2025, How to build the best medical image segmentation algorithm using foundation "
        "models (MELBA 2025:006)",
        url="https://arxiv.org/abs/2404.09957",
        result="— (18 strategies, 17 data sets): parameter-efficient learning in both encoder and decoder "
        "beat the other strategies",
        sources=(("abstract", "https://arxiv.org/abs/2404.09957"),),
        addresses=("domain_gap",),
        notebooks=("05_adapting_sam", "06_medical_foundation_models"),
        functions=("utils.peft.decoder_only", "utils.training.train", "utils.lessons.comparison.compare_strategies"),
        in_course="implemented: five strategies on one split, same steps and seed (05); decoder-only point "
        "training (06)",
        survey=SURVEY_SECTIONS[2],
    ),
    Method(
        family="Fine-tuning: adapters",
        idea="Small bottleneck modules inside every encoder block; only they (and optionally the decoder) train.",
        paper="Wu et al. 2023, Medical SAM Adapter (MSA)",
        url="https://arxiv.org/abs/2304.12620",
        result="Dice: ISIC, SAM ViT-B with adapters 0.9225; REFUGE, MobileSAM with adapters 0.9330. "
        "Paper: 17 tasks, 2 % of the parameters updated",
        sources=(
            ("MSA repo, mobile_sam.ipynb", f"{_MSA_REPO}/mobile_sam.ipynb"),
            ("MSA repo, lora.ipynb", f"{_MSA_REPO}/lora.ipynb"),
            ("abstract", "https://arxiv.org/abs/2304.12620"),
        ),
        addresses=("domain_gap",),
        notebooks=("05_adapting_sam",),
        functions=("utils.peft.adapter",),
        in_course="implemented: MSA-style serial + parallel adapters in every block",
        survey=SURVEY_SECTIONS[2],
    ),
    Method(
        family="Fine-tuning: LoRA",
        idea="Low-rank updates W + BA of the encoder's attention projections; merge them into W afterwards.",
        paper="Zhang & Liu 2023, SAMed",
        url="https://arxiv.org/abs/2304.13785",
        result="Synapse multi-organ CT: DSC 81.88, HD 20.64. REFUGE, MobileSAM (MSA repo): LoRA 0.9107 vs "
        "adapters 0.9330 Dice",
        sources=(("abstract", "https://arxiv.org/abs/2304.13785"), ("MSA repo, lora.ipynb", f"{_MSA_REPO}/lora.ipynb")),
        addresses=("domain_gap",),
        notebooks=("05_adapting_sam",),
        functions=("utils.peft.lora", "utils.peft.merge_lora", "utils.peft.save_trainable"),
        in_course="implemented: LoRA on the fused qkv of every block (checked against HF peft), merged for inference",
        survey=SURVEY_SECTIONS[2],
    ),
    Method(
        family="Fine-tuning: SVD",
        idea="Keep each encoder weight's singular vectors; learn a scale and a shift of its singular values.",
        paper="Paranjape et al. 2024, S-SAM",
        url="https://arxiv.org/abs/2408.06447",
        result="trains about 0.4 % of SAM's parameters (with label names as prompts); beats SAM adaptation "
        "methods on five modalities",
        sources=(("abstract", "https://arxiv.org/abs/2408.06447"),),
        addresses=("domain_gap",),
        notebooks=("05_adapting_sam",),
        functions=("utils.peft.svd", "utils.peft.trainable_parameters"),
        in_course="implemented: singular-value scale and shift only (no text prompts, layer norms or "
        "positional embeddings)",
        survey=ADDED,
    ),
    Method(
        family="Medical foundation model",
        idea="Fine-tune all of SAM on a large, diverse medical set with box prompts; LiteMedSAM distils it "
        "into a small TinyViT encoder that runs on a CPU.",
        paper="Ma et al. 2024, MedSAM (Nature Communications 15:654)",
        url="https://doi.org/10.1038/s41467-024-44824-z",
        result="— (1,570,263 image–mask pairs, 10 modalities): more accurate than modality-wise specialist "
        "models on 86 internal and 60 external validation tasks",
        sources=(
            ("abstract", "https://doi.org/10.1038/s41467-024-44824-z"),
            ("LiteMedSAM", "https://github.com/bowang-lab/MedSAM/tree/LiteMedSAM"),
        ),
        addresses=("domain_gap",),
        notebooks=("06_medical_foundation_models", "05_adapting_sam"),
        functions=("utils.models.load_predictor", "utils.models.load_medsam", "utils.peft.full"),
        in_course="used: LiteMedSAM's released weights run every offline notebook; full fine-tuning at toy scale in 05",
        survey=SURVEY_SECTIONS[2],
    ),
    Method(
        family="Medical foundation model: every prompt",
        idea="Fine-tune on millions of medical images with points, boxes and masks, so every prompt type works.",
        paper="Cheng et al. 2023, SAM-Med2D",
        url="https://arxiv.org/abs/2308.16184",
        result="Dice %: box 79.30, 1 point 70.01 (SAM: 74.49 and 36.88)",
        sources=(_SAMMED2D_README,),
        addresses=("domain_gap", "prompt_ambiguity"),
        notebooks=("06_medical_foundation_models",),
        functions=("utils.training.train", "utils.evaluate.compare_modes"),
        in_course="partly: 06 teaches box-trained LiteMedSAM single points by decoder-only fine-tuning on "
        "one structure",
        survey=SURVEY_SECTIONS[2],
    ),
    Method(
        family="3-D extensions",
        idea="Bring in the third dimension: 3-D adapters inside the 2-D encoder, or a 2-D model propagated "
        "slice by slice.",
        paper="Chen et al. 2023, MA-SAM",
        url="https://arxiv.org/abs/2309.08842",
        result="Dice above nnU-Net by 0.9 % (CT multi-organ), 2.6 % (MRI prostate) and 9.9 % (surgical "
        "scenes), without prompts",
        sources=(("abstract", "https://arxiv.org/abs/2309.08842"),),
        addresses=("no_3d_context",),
        notebooks=("07_volumetric",),
        functions=(
            "utils.lessons.volumetric.propagate",
            "utils.lessons.volumetric.slicewise_upper_bound",
            "utils.metrics.dice",
        ),
        in_course="partly: slice-by-slice box propagation with a stop rule, scored in 3-D; no 3-D adapters",
        survey=SURVEY_SECTIONS[2],
    ),
    Method(
        family="Uncertainty",
        idea="Say where a mask may be wrong: draw several plausible answers and map where they disagree.",
        paper="Jiang et al. 2024, Uncertainty-aware adapter",
        url="https://arxiv.org/abs/2403.10931",
        result="— : a conditional-VAE adapter samples diverse masks; best on the multi-rater LIDC-IDRI and "
        "REFUGE2 sets",
        sources=(("abstract (v2)", "https://arxiv.org/abs/2403.10931v2"),),
        addresses=("silent_errors", "prompt_ambiguity"),
        notebooks=("06_medical_foundation_models",),
        functions=(
            "utils.lessons.uncertainty.multimask_disagreement",
            "utils.lessons.uncertainty.tta_uncertainty",
            "utils.lessons.uncertainty.error_vs_uncertainty",
        ),
        in_course="partly: training-free maps (multimask disagreement, test-time augmentation) scored "
        "against the errors; no learned adapter",
        survey=SURVEY_SECTIONS[2],
    ),
    Method(
        family="Memory across frames: SAM 2",
        idea="A streaming memory of earlier frames conditions each new mask: one prompt follows an object "
        "through a video.",
        paper="Ravi et al. 2024, SAM 2",
        url="https://arxiv.org/abs/2408.00714",
        result="video: better accuracy with 3× fewer interactions; images: more accurate and 6× faster than SAM",
        sources=(("abstract", "https://arxiv.org/abs/2408.00714"),),
        addresses=("no_3d_context",),
        notebooks=("07_volumetric",),
        functions=("utils.lessons.volumetric.propagate",),
        in_course="not implemented: 07's propagation has no memory, and its gap to the user-given slice "
        "range (in_range) shows what a memory has to fix",
        survey=ADDED,
    ),
    Method(
        family="Memory across slices: MedSAM2",
        idea="SAM 2 fine-tuned on medical volumes and videos: a volume is one prompt away.",
        paper="Ma et al. 2025, MedSAM2",
        url="https://arxiv.org/abs/2504.03600",
        result="fine-tuned on 455,000+ 3-D image–mask pairs and 76,000 frames; in user studies it cut "
        "manual annotation cost by more than 85 %",
        sources=(("abstract", "https://arxiv.org/abs/2504.03600"),),
        addresses=("no_3d_context",),
        notebooks=("07_volumetric",),
        functions=("utils.lessons.volumetric.slicewise_upper_bound",),
        in_course="not implemented: 07's slice-wise ground-truth-box upper bound is what a 2-D model can "
        "reach at best, the bar a memory model is measured against",
        survey=ADDED,
    ),
)


#: Trainable share of SAM's parameters as papers report it, for the :mod:`utils.peft` strategy that
#: implements the idea: strategy → (percent, what the paper trains, source).
PUBLISHED_SHARES: dict[str, tuple[float, str, str]] = {
    "adapter": (
        2.0,
        "MSA abstract: 'updating only 2% of the parameters'",
        "https://arxiv.org/abs/2304.12620",
    ),
    "svd": (0.4, "S-SAM abstract: 'parameters equal to 0.4% of SAM's parameters'", "https://arxiv.org/abs/2408.06447"),
}


def methods_table(methods: tuple[Method, ...] = METHODS) -> pd.DataFrame:
    """:data:`METHODS` as a DataFrame (one row per method, the tuples kept as tuples), plus ``status``:
    the first words of ``in_course`` (implemented, partly, used, not implemented...)."""
    table = pd.DataFrame([vars(m) for m in methods])
    table["status"] = table["in_course"].str.split(":").str[0]
    return table


def share_table(model: str = "sam_vit_b") -> pd.DataFrame:
    """Trainable parameters under each :mod:`utils.peft` strategy (default options) on ``model``'s
    architecture built on the ``meta`` device (no weights), beside :data:`PUBLISHED_SHARES`.

    Columns: ``trainable, total, share_%`` (this course) and ``published_%, published_what, source``
    (NaN / empty where the paper gives no share).
    """
    from utils import models, peft

    rows = {}
    for name, strategy in peft.STRATEGIES.items():
        trainable, total, share = peft.trainable_parameters(strategy(models.meta_sam(model)))
        published, what, source = PUBLISHED_SHARES.get(name, (float("nan"), "", ""))
        rows[name] = {
            "trainable": trainable,
            "total": total,
            "share_%": 100 * share,
            "published_%": published,
            "published_what": what,
            "source": source,
        }
    return pd.DataFrame(rows).T.astype({"trainable": int, "total": int, "share_%": float, "published_%": float})


def plot_shares(table: pd.DataFrame, ax: Any = None):
    """Horizontal bars of this course's trainable share per strategy (log scale), published shares as marks."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.0), layout="constrained")
    positions = list(range(len(table)))
    ax.barh(positions, table["share_%"], color="#1E90FF", label="this course (utils.peft defaults)")
    for y, share in zip(positions, table["share_%"]):
        ax.text(share * 1.08, y, f"{share:.3g} %", va="center", fontsize=8)
    published = table["published_%"].notna()
    rows = [y for y, shown in zip(positions, published) if shown]
    ax.scatter(table.loc[published, "published_%"], rows, marker="D", color="#FF4FD8", zorder=3, label="published")
    ax.set(
        yticks=positions, yticklabels=list(table.index), xscale="log", xlabel="trainable share of the parameters (%)"
    )
    ax.set_xlim(right=table["share_%"].max() * 4)  # room for the labels
    ax.invert_yaxis()
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncols=2, frameon=False)
    return ax


def notebooks_for(failure: str, methods: tuple[Method, ...] = METHODS) -> list[str]:
    """Sorted stems of the notebooks that implement a method addressing ``failure`` (a key of :data:`FAILURES`)."""
    if failure not in FAILURES:
        raise ValueError(f"Unknown failure {failure!r}; choose one of {sorted(FAILURES)}.")
    return sorted({stem for m in methods if failure in m.addresses for stem in m.notebooks})


def resolve(name: str) -> Any:
    """Import the object a dotted name names: ``resolve("utils.peft.lora")`` is :func:`utils.peft.lora`.

    Tries the longest importable module prefix, then attributes. Raises ``ValueError`` naming the part
    that does not exist.
    """
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+", name):
        raise ValueError(f"name must be a dotted name such as 'utils.peft.lora'; got {name!r}.")
    parts = name.split(".")
    for split in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:split])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as missing:
            if missing.name and module_name.startswith(missing.name):
                continue  # this prefix is not a module: try a shorter one
            raise
        for attribute in parts[split:]:
            if not hasattr(obj, attribute):
                raise ValueError(f"{name!r} does not resolve: {module_name!r} has no attribute {attribute!r}.")
            obj = getattr(obj, attribute)
        return obj
    raise ValueError(f"{name!r} does not resolve: no module {parts[0]!r} can be imported.")


def _module_file(name: str) -> str:
    """Path of a dotted function name's module source, relative to ``notebooks/`` (``../utils/peft.py``)."""
    from utils.machine import repo_root

    module = name.rsplit(".", 1)[0].replace(".", "/")  # the table names module-level functions and classes
    return "../" + (f"{module}/__init__.py" if (repo_root() / module).is_dir() else f"{module}.py")


def _notebook_link(stem: str) -> str:
    return f"[{stem}]({stem}.ipynb)"


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def course_map_markdown(notebooks: dict[str, str] = NOTEBOOKS) -> str:
    """The course map as a Markdown table, each notebook linked relative to ``notebooks/``."""
    lines = ["| notebook | what it covers |", "|---|---|"]
    lines += [f"| {_notebook_link(stem)} | {_escape(text)} |" for stem, text in notebooks.items()]
    return "\n".join(lines)


def markdown_table(methods: tuple[Method, ...] = METHODS) -> str:
    """The landscape as a Markdown table with working links (papers, sources, notebooks, utils sources)."""
    lines = [
        "| family | survey section | idea | representative work | reported result (source) | in this course |",
        "|---|---|---|---|---|---|",
    ]
    for m in methods:
        sources = ", ".join(f"[{label}]({url})" for label, url in m.sources)
        where = ", ".join(_notebook_link(stem) for stem in m.notebooks)
        code = ", ".join(f"[`{name}`]({_module_file(name)})" for name in m.functions)
        cells = (
            f"**{_escape(m.family)}**",
            _escape(m.survey) if m.survey != ADDED else f"*{ADDED}*",
            _escape(m.idea),
            f"[{_escape(m.paper)}]({m.url})",
            f"{_escape(m.result)} ({sources})",
            f"{where}: {code}. *{_escape(m.in_course)}*",
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def check_links(
    methods: tuple[Method, ...] = METHODS, notebooks: dict[str, str] = NOTEBOOKS, folder: Path | None = None
) -> pd.DataFrame:
    """Every link the tables make, and whether it works: one row per (kind, target) with ``ok`` and ``problem``.

    Kinds: ``notebook`` (``folder/<stem>.ipynb`` exists; ``folder`` defaults to the course's
    ``notebooks/``), ``function`` (the dotted name resolves with :func:`resolve`), ``source file`` (the
    module file a function links to exists) and ``url`` (an https address; arXiv links are
    ``https://arxiv.org/abs/<id>``). Web addresses are checked for form only: the tests run offline.
    """
    from utils.machine import repo_root

    folder = Path(folder) if folder is not None else repo_root() / "notebooks"
    rows: list[dict[str, Any]] = []

    def add(kind: str, target: str, problem: str | None) -> None:
        rows.append({"kind": kind, "target": target, "ok": problem is None, "problem": problem or ""})

    stems = dict.fromkeys([*notebooks, *(s for m in methods for s in m.notebooks)])
    for stem in stems:
        add("notebook", stem, None if (folder / f"{stem}.ipynb").is_file() else f"{folder / stem}.ipynb is missing")
    for name in dict.fromkeys(n for m in methods for n in m.functions):
        try:
            resolve(name)
            problem = None
        except (ValueError, ImportError) as error:
            problem = str(error)
        add("function", name, problem)
        source = (folder / _module_file(name)).resolve()
        add("source file", _module_file(name), None if source.is_file() else f"{source} is missing")
    for url in dict.fromkeys(u for m in methods for u in (m.url, *(s[1] for s in m.sources))):
        problem = None if url.startswith("https://") else "not an https address"
        if (
            problem is None
            and "arxiv.org" in url
            and not re.fullmatch(r"https://arxiv\.org/abs/\d{4}\.\d{4,5}(v\d+)?", url)
        ):
            problem = "arXiv links must be https://arxiv.org/abs/<id>"
        add("url", url, problem)
    return pd.DataFrame(rows)
