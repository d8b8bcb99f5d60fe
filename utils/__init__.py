"""Shared, tested code for the course "SAM for Medical Image Segmentation".

Notebooks import from here and never re-define these helpers. One concept per module:
``env`` (device, run mode, results), ``images`` (input checks), ``download`` (verified
fetches), ``models``, ``datasets``, ``phantoms``, ``prompts``, ``metrics``, ``viz``.
"""

__version__ = "0.1.0"
