"""Modules that serve one lesson each: what a notebook teaches beyond the pipeline's nouns.

``anatomy`` (01: inside SAM), ``playground`` (02: the prompt playground), ``sweeps`` and ``domain``
(04: why SAM fails), ``comparison`` (05: adaptation strategies side by side), ``uncertainty`` (06),
``volumetric`` (07: 3-D by propagation), ``autoprompt`` and ``landscape`` (08). They import the
pipeline (``utils.*``), never a repository tool, and no lesson module imports another.
"""
