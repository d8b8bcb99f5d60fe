"""Shared, tested code for the course "SAM for Medical Image Segmentation".

Notebooks import from here and never re-define these helpers. One concept per module:
``env`` (device, run mode, results), ``images`` (input checks), ``download`` (verified
fetches), ``models``, ``datasets``, ``phantoms``, ``prompts``, ``metrics``, ``viz``,
``anatomy`` (inside SAM), ``evaluate`` (cases × prompt modes), ``sweeps`` and ``domain`` (why SAM
fails), ``widgets`` (prompt playground), ``peft``, ``training`` and ``comparison`` (adaptation),
``uncertainty`` (medical foundation models), ``volumetric`` (3-D), ``autoprompt`` (automatic prompts)
and ``landscape`` (the survey mapped to the course), ``exercises``, ``harness`` (papermill),
``colab``, ``prefetch``.
"""

__version__ = "0.1.0"
