"""Shared, tested code for the course "SAM for Medical Image Segmentation".

Notebooks only import from here. The package has three layers; imports only point down
(``tests/test_architecture.py`` reads them from the code: no cycle, no private name used across modules).

The pipeline — the course's nouns, at the top level (each may import only the ones before it, roughly):
  ``checks``     shared input checks (whole numbers, finite numbers, choices): one wording for one mistake
  ``machine``    facts about the machine: folders, Colab, network, device, seeds, versions, JSON helpers
  ``images``     input checks and conversions (RGB uint8, masks, rescaling)
  ``download``   verified fetches: cached, hash-checked, atomic, offline-aware
  ``models``     the registry (names, checkpoints, hashes), ``load_predictor``, ``CachedPredictor`` (the one
                 embedding cache), model cards
  ``env``        the run: mode, budget, banner, results.json (``start_run``)
  ``prompts``    every prompt rule: boxes and points from masks, jitter, checks, the evaluation and training
                 prompt simulators, box geometry
  ``metrics``    Dice, IoU, HD95, NSD and boundaries in 2-D and 3-D, volumes, the bootstrap CI
  ``datasets``   ``Case`` and the loaders for real scans and downloadable sets
  ``phantoms``   procedural phantoms with a known mask
  ``cases``      which cases a lesson runs on (benchmark sets, spreads, descriptions)
  ``published``  published SAM results beside the course's own
  ``viz``        every figure helper (masks, prompts, galleries, evaluation plots)
  ``evaluate``   the zero-shot protocol: cases × prompt modes, one embedding per image, and its statistics
  ``peft``       parameter-efficient modules (LoRA, SVD, adapters) and the strategies that place them
  ``training``   fine-tuning: Dice + BCE, simulated prompts, accumulation, checkpointing, held-out Dice

The lessons (``utils/lessons/``): what one notebook teaches beyond the pipeline; a lesson imports the
pipeline only, never another lesson or a tool.
  ``lessons.anatomy``      01: parameter counts, traced shapes, the prompt encoder, component timing
  ``lessons.playground``   02: the prompt playground (a state object and its widget views)
  ``lessons.sweeps``       04: one factor at a time on phantoms
  ``lessons.domain``       04: the domain gap in SAM's embedding space
  ``lessons.comparison``   05: adaptation strategies on one split and one budget
  ``lessons.uncertainty``  06: multimask and test-time-augmentation uncertainty
  ``lessons.volumetric``   07: 3-D by slice propagation with a stop rule
  ``lessons.autoprompt``   08: a box prompt from a classical coarse segmentation
  ``lessons.landscape``    08: the survey's methods mapped to the course

The exercises (``utils/exercises/``): ``exercises`` holds one module per notebook (nb01 ... nb08) with
checks and hidden solutions; it may import the pipeline and the lessons.

Repository tools (``utils/tools/``): what runs the course rather than what it teaches; they may import
anything above, and nothing imports them (the notebooks' install cell imports ``tools.colab``).
  ``tools.harness``    papermill runs (``make course``, ``make check``)
  ``tools.colab``      the install cell, ``colab_setup`` and the Colab package check
  ``tools.prefetch``   download the full mode's files once
  ``tools.mirror``     serve that cache to a workshop's room
  ``tools.rehearsal``  the full mode against stand-in files (``make rehearse``)

Where a new function goes: to the module that owns its noun (a metric to ``metrics``, a prompt rule to
``prompts``, a figure to ``viz``); to a lesson module only when a single notebook needs it; never copied.
Sizes a notebook runs at are chosen in its cells with ``run.budget(...)``, not inside ``utils``.
"""

__version__ = "0.1.0"
