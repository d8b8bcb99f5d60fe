"""Repository tools: what runs the course rather than what it teaches.

``harness`` (papermill runs, ``make course``/``make check``), ``colab`` (install cell, Colab package
check), ``prefetch`` (download a full-mode cache), ``mirror`` (serve that cache to a room) and
``rehearsal`` (the full mode against stand-in files). They may import anything in ``utils``; nothing
in ``utils`` imports them, except that every notebook's install cell imports ``colab``.
"""
