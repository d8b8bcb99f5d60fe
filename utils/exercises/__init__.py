"""Exercises with automatic checks and hidden solutions.

Each notebook's exercises live in ``utils/exercises/nbNN.py`` and register themselves here with
:func:`exercise`. In a notebook an exercise is three cells::

    # Exercise 2 — your code: set `answer` (leave None to skip)
    answer = None
    ...
    exercises.check("01.patch_tokens", answer, use_solution=SOLUTIONS, sam=sam)  # ✅ / ❌ + hint / ⏳

and a collapsed markdown cell made by :func:`solution_markdown` (``<details>``: closed until the
student clicks it) that shows the reference solution's source. ``SOLUTIONS = True`` in a
notebook's parameters fills every answer with the reference solution, so CI proves that each
solution passes its own check in the real notebook context.

Every exercise declares its kind (:data:`KINDS`):

- ``check``: compute something the lesson just used, by hand, and compare with the library;
- ``predict``: write down a prediction *before* running the cell that measures it; the check
  (:func:`grade_prediction`) accepts any of the declared ``choices`` and explains this run's outcome
  either way — a wrong prediction is answered, not failed, because the point is to commit first;
- ``build``: write a component the course then runs and measures (a stop rule, an augmentation,
  a training step); the check scores it in the notebook's own pipeline.

``warmup=True`` marks a short recall exercise (a box from a mask, a click to a pixel); the course
keeps at most :data:`MAX_WARMUPS` of them (a test counts them).
"""

from __future__ import annotations

import importlib
import inspect
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "KINDS",
    "MAX_WARMUPS",
    "Exercise",
    "REGISTRY",
    "check",
    "exercise",
    "grade_prediction",
    "results",
    "solution",
    "solution_markdown",
    "solution_source",
    "summary",
]


@dataclass(frozen=True)
class Exercise:
    """One exercise: its question, a checker and a reference solution."""

    key: str
    question: str
    checker: Callable[..., tuple[bool, str]]  # (answer, **context) -> (passed, feedback)
    solver: Callable[..., Any]  # (**context) -> reference answer
    hint: str = ""
    kind: str = "check"  # one of KINDS
    warmup: bool = False  # a short recall exercise (the course keeps at most MAX_WARMUPS)
    choices: tuple[Any, ...] = ()  # a predict exercise's possible answers


KINDS = ("check", "predict", "build")
MAX_WARMUPS = 4
REGISTRY: dict[str, Exercise] = {}
_RESULTS: dict[str, str] = {}  # key -> "passed" | "failed" | "unanswered"
_MODULES = ("nb00", "nb01", "nb02", "nb03", "nb04", "nb05", "nb06", "nb07", "nb08")


def exercise(
    key: str,
    question: str,
    solver: Callable[..., Any],
    hint: str = "",
    *,
    kind: str,
    warmup: bool = False,
    choices: tuple[Any, ...] = (),
):
    """Decorator registering ``checker`` as the check of exercise ``key`` (``"NN.short_name"``).

    ``kind`` is one of :data:`KINDS`; a ``predict`` exercise lists the answers it accepts in ``choices``.
    """
    if kind not in KINDS:
        raise ValueError(f"Exercise {key!r}: kind {kind!r} is not one of {KINDS}.")
    if (kind == "predict") != bool(choices):
        raise ValueError(f"Exercise {key!r}: a predict exercise lists its choices, other kinds do not.")

    def register(checker: Callable[..., tuple[bool, str]]):
        if key in REGISTRY:
            raise ValueError(f"Exercise {key!r} is registered twice.")
        REGISTRY[key] = Exercise(key, question, checker, solver, hint, kind, warmup, tuple(choices))
        return checker

    return register


def grade_prediction(answer: Any, outcome: Any, choices: tuple[Any, ...], why: str) -> tuple[bool, str]:
    """The check of a predict exercise: any declared choice is an answer; say whether it came true, and why.

    ``outcome`` is what this run measured (one of ``choices``); ``why`` explains it from this run's numbers.
    """
    if answer not in choices:
        return False, f"answer one of {', '.join(repr(c) for c in choices)} (you wrote {answer!r})"
    verdict = "your prediction held" if answer == outcome else f"this run says {outcome!r}, not {answer!r}"
    return True, f"{verdict}. {why}"


def _load_all() -> None:
    for name in _MODULES:
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise


def _get(key: str) -> Exercise:
    _load_all()
    if key not in REGISTRY:
        raise ValueError(f"Unknown exercise {key!r}. Known: {', '.join(sorted(REGISTRY)) or 'none'}.")
    return REGISTRY[key]


def check(key: str, answer: Any, use_solution: bool = False, **context: Any) -> bool:
    """Check ``answer`` for exercise ``key``; print feedback; return whether it passed.

    ``use_solution=True`` (a notebook's ``SOLUTIONS`` parameter) checks the reference solution
    instead when ``answer`` is None, so a run with solutions proves every check can pass.
    """
    item = _get(key)
    if answer is None and use_solution:
        answer = item.solver(**context)
        print(f"(using the reference solution for {key})")
    if answer is None:
        _RESULTS[key] = "unanswered"
        variable = "prediction" if item.kind == "predict" else "answer"
        print(f"⏳ {key}: not answered yet — set `{variable}` and run the cell again.")
        return False
    try:
        passed, feedback = item.checker(answer, **context)
    except Exception as exc:  # a wrong-shaped answer must produce feedback, not a crash
        passed, feedback = False, f"your answer could not be checked ({exc.__class__.__name__}: {exc})"
    _RESULTS[key] = "passed" if passed else "failed"
    if passed:
        print(f"✅ {key}: correct. {feedback}".rstrip())
    else:
        print(f"❌ {key}: not yet — {feedback}" + (f"\n   hint: {item.hint}" if item.hint else ""))
    return bool(passed)


def solution(key: str, **context: Any) -> Any:
    """The reference answer (what ``SOLUTIONS = True`` plugs in)."""
    return _get(key).solver(**context)


def solution_source(key: str) -> str:
    """Source code of the reference solution, for the hidden solution cell."""
    return textwrap.dedent(inspect.getsource(_get(key).solver))


def solution_markdown(key: str) -> str:
    """The hidden-solution markdown cell for exercise ``key`` (collapsed in Jupyter, Colab and VS Code)."""
    code = solution_source(key)
    return f"<details><summary>Solution to {key} (click to open)</summary>\n\n```python\n{code}```\n\n</details>"


def results() -> dict[str, str]:
    """Status of every exercise checked in this kernel: passed / failed / unanswered."""
    return dict(_RESULTS)


def summary(prefix: str = "") -> dict[str, Any]:
    """Counts for results.json: how many exercises (with ``prefix``) passed, failed, were skipped, by kind."""
    chosen = {k: v for k, v in _RESULTS.items() if k.startswith(prefix)}
    kinds = {k: REGISTRY[k].kind for k in chosen if k in REGISTRY}
    return {
        "kinds": {kind: sum(v == kind for v in kinds.values()) for kind in KINDS},
        "total": len(chosen),
        "passed": sum(v == "passed" for v in chosen.values()),
        "failed": sum(v == "failed" for v in chosen.values()),
        "unanswered": sum(v == "unanswered" for v in chosen.values()),
        "status": chosen,
    }
