"""The paper's published numbers, as committed under ``data_manifest/paper/``.

Each table carries its provenance (which figure or table of the paper, how it
was read, how exact it is) from ``data_manifest/paper/provenance.csv``, exposed
as ``df.attrs["provenance"]`` so a notebook can print it beside the numbers.
"""
from __future__ import annotations

import pandas as pd

from ..paths import paper_csv, paper_data_dir

__all__ = ["load_published", "provenance", "value_error", "printed"]


def provenance() -> pd.DataFrame:
    """One row per published table: file, paper_source, what, exactness."""
    return pd.read_csv(paper_data_dir() / "provenance.csv")


def load_published(name: str) -> pd.DataFrame:
    """Load one published table by name, e.g. ``load_published("table1_scaling_law_params")``.

    ``df.attrs["provenance"]`` holds its row of ``provenance.csv`` as a dict.
    """
    prov = provenance().set_index("file")
    if name not in prov.index:
        raise ValueError(f"No published table {name!r}; choose one of {sorted(prov.index)}.")
    df = pd.read_csv(paper_csv(name))
    df.attrs["provenance"] = {"file": name, **prov.loc[name].to_dict()}
    return df


def value_error(name: str) -> float:
    """The largest error of one value of published table ``name`` as carried here (digitisation, or
    rounding of a printed value), from the ``value_error`` column of ``provenance.csv``: the noise
    margin every status rule applies to the paper's data."""
    prov = provenance().set_index("file")
    error = prov.loc[name, "value_error"] if name in prov.index else float("nan")
    if pd.isna(error):
        raise ValueError(f"{name!r} has no value_error in provenance.csv: add the error of its values first.")
    return float(error)


def printed(quantity: str) -> float:
    """One number printed in the paper's text or annotations (``printed_numbers.csv``), e.g.
    ``printed("fig7_caption_gain")`` -> 0.6."""
    table = load_published("printed_numbers").set_index("quantity")
    if quantity not in table.index:
        raise ValueError(f"No printed number {quantity!r}; choose one of {sorted(table.index)}.")
    return float(table.loc[quantity, "value"])


def printed_error(quantity: str) -> float:
    """The precision a printed number was given with (``value_error`` of ``printed_numbers.csv``: half the unit of
    its last printed digit), e.g. ``printed_error("fig7_caption_gain")`` -> 0.05 (the slope 1.6, one decimal)."""
    printed(quantity)  # the same clear error for an unknown name
    return float(load_published("printed_numbers").set_index("quantity").loc[quantity, "value_error"])
