"""A chapter's parameters checked against its notebook before anything runs.

The notebook's ``parameters`` cell is the declaration: each name with its default, whose type is the
parameter's type. :func:`check_parameters` takes what a user passed (``-p KEY VALUE``, read as YAML, or a
dict from Python) and returns the values the chapter will run with, or raises :class:`ParameterError`
with one sentence naming the problem and the fix. The rules:

- **names**: a name the notebook does not declare is an error that lists the declared ones (and the
  closest, for a typo);
- **lists**: where the default is a list, a single value becomes a one-element list (``-p frames 4`` is
  ``[4]``, ``-p vision_models efficientnet-lite0`` is ``["efficientnet-lite0"]``), never a string split
  into characters; each element must have the type of the default's elements;
- **scalars**: an integer parameter takes an integer (not ``"abc"``, not ``2.5``, not ``true``); a float
  takes any number; a boolean only ``true`` / ``false``; a string a string; a mapping a mapping; a
  parameter whose default is ``None`` takes ``None`` or a scalar;
- **counts**: the names in :data:`AT_LEAST` have a minimum (``k`` and ``frames`` >= 1, ...), and ``k``
  (or every value of ``ks``) must be below the number of clips where ``dataset_options`` names it;
- **files**: a parameter named ``*_csv`` or ``*_npz`` is a path; a relative one is read from the folder
  the command ran in (not the project root, where chapters execute) and must exist.
"""
from __future__ import annotations

import ast
import difflib
import numbers
from pathlib import Path

__all__ = ["ParameterError", "declared", "check_parameters", "AT_LEAST", "ALSO_ACCEPTS"]

# Smallest legal value of a count, wherever a chapter declares a parameter of this name.
AT_LEAST = {"k": 1, "ks": 1, "frames": 1, "captions": 1, "cached_frames": 1, "knn_k": 1, "n_folds": 2,
            "n_paragraphs": 2, "n_items": 2, "n_bootstrap": 0, "n_permutations": 0, "frame_levels": 1}
# Parameters that take a second form beside their default's type.
ALSO_ACCEPTS = {("test_time_scaling", "forms"): list}
_PATH_SUFFIXES = ("_csv", "_npz")


class ParameterError(ValueError):
    """A chapter parameter that cannot run: the message names it and says what to pass instead."""


def declared(name: str) -> dict:
    """The parameters notebook ``name`` declares: ``{parameter: default value}`` (its ``parameters`` cell,
    read by papermill and evaluated as Python literals)."""
    import papermill as pm

    from .runner import notebook

    found = pm.inspect_notebook(str(notebook(name).path))
    return {key: ast.literal_eval(spec["default"]) for key, spec in found.items()}


def _kind(value) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, numbers.Integral):
        return "an integer"
    if isinstance(value, numbers.Real):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a mapping ({key: value})"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


def _fits(value, default) -> bool:
    if default is None:
        return value is None or isinstance(value, (bool, numbers.Real, str))
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, numbers.Integral):
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if isinstance(default, numbers.Real):
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, dict):
        return isinstance(value, dict)
    return True


def _one(chapter: str, key: str, value, default):
    """``value`` in the form the chapter expects, or a ParameterError."""
    also = ALSO_ACCEPTS.get((chapter, key))
    if also is list and isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(default, (list, tuple)):
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        example = next(iter(default), None)
        for v in values:
            if example is not None and not _fits(v, example):
                raise ParameterError(f"{key}: every element must be {_kind(example)} like {example!r}; got {v!r}. "
                                     f"Pass e.g. -p {key} '{list(default)}'.")
        return values
    if not _fits(value, default):
        raise ParameterError(f"{key} must be {_kind(default)} (default {default!r}); got {value!r}, "
                             f"{_kind(value)}. Pass e.g. -p {key} {default!r}.")
    return value


def _at_least(key: str, value) -> None:
    if key not in AT_LEAST:
        return
    low = AT_LEAST[key]
    for v in value if isinstance(value, list) else [value]:
        if isinstance(v, numbers.Real) and not isinstance(v, bool) and v < low:
            raise ParameterError(f"{key} must be at least {low}; got {v}.")


def _path(key: str, value: str, cwd: Path) -> str:
    if not value:
        return value
    path = Path(value).expanduser()
    path = path if path.is_absolute() else cwd / path
    if not path.is_file():
        raise ParameterError(f"{key}: no file at {path} (a relative path is read from the folder the command "
                             f"ran in, {cwd}).")
    return str(path.resolve())


def check_parameters(chapter: str, parameters: dict, cwd: Path | None = None,
                     defaults: dict | None = None) -> dict:
    """The parameters ``chapter`` will run with, checked and put in the declared form (see the module
    rules); raises :class:`ParameterError` before any work.

    Example: ``check_parameters("live_scaling", {"frames": 4})`` is ``{"frames": [4]}``;
    ``check_parameters("live_scaling", {"n_boostrap": 10})`` raises, naming ``n_bootstrap``.
    """
    defaults = declared(chapter) if defaults is None else defaults
    cwd = Path(cwd) if cwd else Path.cwd()
    out = {}
    for key, value in (parameters or {}).items():
        if key not in defaults:
            near = difflib.get_close_matches(key, list(defaults), n=1)
            hint = f" Did you mean {near[0]!r}?" if near else ""
            raise ParameterError(f"{chapter} has no parameter {key!r}.{hint} Its parameters: {', '.join(defaults)}.")
        value = _one(chapter, key, value, defaults[key])
        _at_least(key, value)
        if key.endswith(_PATH_SUFFIXES) and isinstance(value, str):
            value = _path(key, value, cwd)
        out[key] = value
    merged = {**defaults, **out}
    n_clips = (merged.get("dataset_options") or {}).get("n_clips") if isinstance(merged.get("dataset_options"),
                                                                                   dict) else None
    if isinstance(n_clips, numbers.Integral):
        if n_clips < 2:
            raise ParameterError(f"dataset_options.n_clips must be at least 2; got {n_clips}.")
        for key in ("k", "ks"):
            if key in merged:
                for k in merged[key] if isinstance(merged[key], list) else [merged[key]]:
                    if isinstance(k, numbers.Integral) and k >= n_clips:
                        raise ParameterError(f"{key} = {k} needs more than {k} clips, and dataset_options.n_clips "
                                             f"is {n_clips}: choose k below {n_clips} or more clips.")
    return out
