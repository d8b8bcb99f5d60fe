"""Shared, tested code for the course "SAM for Medical Image Segmentation".

Notebooks import from here and never re-define these helpers. One concept per module:
``env`` (device, run mode, results), ``images`` (input checks), ``download`` (verified
fetches), ``models``, ``datasets``, ``phantoms``, ``prompts``, ``metrics``, ``viz``,
``anatomy`` (inside SAM), ``evaluate`` (cases × prompt modes), ``sweeps`` and ``domain`` (why SAM
fails), ``widgets`` (prompt playground), ``peft``, ``training`` and ``comparison`` (adaptation),
``uncertainty`` (medical foundation models), ``volumetric`` (3-D), ``autoprompt`` (automatic prompts)
and ``landscape`` (the survey mapped to the course), ``exercises``; repository tools: ``harness``
(papermill), ``colab`` (install cell, Colab package check), ``prefetch``, ``mirror`` (a workshop's
cache server) and ``rehearsal`` (the full mode against stand-in files).
"""

__version__ = "0.1.0"
