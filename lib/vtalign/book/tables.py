"""How the book shows a table: numbers to their precision, missing values as words, wide tables in a scroller.

Every chapter calls :func:`install` once, beside ``figures.use_paper_style()``; from then on a
``DataFrame`` or ``Series`` that a cell displays is rendered by :func:`to_html`, so no chapter formats a table by hand
and no raw repr (``NaN``, ``None``, ``<NA>``, ``Name: ..., dtype: ...``) reaches the page. The CSV files under
``results/`` keep full precision; only the page is rounded.

Rules (one place):

- missing values (``None``, ``NaN``, ``pd.NA``, ``NaT``) are shown as :data:`MISSING`;
- p-values (a column named ``p``, ``p_*``, ``*_p`` or containing ``p_value``) as ``< 0.001`` below
  one in a thousand, else three decimals;
- other numbers: a column whose values are all whole numbers as integers; a column already rounded
  to six decimals or fewer (``.round(4)`` in a chapter, a printed value) with as many decimals as it
  has; else three decimals (one when the column's largest magnitude is 100 or more); a non-zero value
  that would print as zero in scientific notation instead;
- booleans as ``yes`` / ``no``; lists and tuples joined with commas;
- every table sits in a ``div.vtalign-table`` that scrolls sideways when wider than the page.

Example::

    >>> print(format_column(pd.Series([0.123456789, None, 2.2e-7]), "alignment").tolist())
    ['0.123', '—', '2.2e-07']
    >>> print(format_column(pd.Series([0.999999, 0.5]), "mean_cosine").tolist())
    ['0.999999', '0.500000']
    >>> print(format_column(pd.Series([0.0004, 0.2]), "permutation_p").tolist())
    ['< 0.001', '0.200']
"""
from __future__ import annotations

import html
import math
import numbers

import numpy as np
import pandas as pd

__all__ = ["MISSING", "is_p_column", "format_p", "p_phrase", "plural", "span", "format_column", "formatted", "to_html",
           "install", "markdown_cell"]

MISSING = "—"
_MAX_STATED = 6  # up to this many decimals, a column's own rounding is its precision
SCROLLER_CLASS = "vtalign-table"


def is_p_column(name) -> bool:
    """Whether a column holds p-values, by its name (``p``, ``p_holm``, ``permutation_p``, ``p_value``)."""
    name = str(name).lower()
    return name == "p" or name.startswith("p_") or name.endswith("_p") or "p_value" in name or "pvalue" in name


def _missing(value) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, (float, np.floating)):
        return math.isnan(value)
    return False


def format_p(p) -> str:
    """A p-value as a reader expects it: ``< 0.001`` below one in a thousand, else three decimals."""
    if _missing(p):
        return MISSING
    p = float(p)
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def p_phrase(p, name: str = "p") -> str:
    """A p-value in prose: ``p < 0.001`` or ``p = 0.040`` (never ``p = 0.000``).

    >>> p_phrase(0.0002), p_phrase(0.04, "p_perm")
    ('p < 0.001', 'p_perm = 0.040')
    """
    text = format_p(p)
    return f"{name} {text}" if text.startswith("<") else f"{name} = {text}"


def plural(n: int, noun: str) -> str:
    """``n`` and ``noun`` in prose: ``1 frame``, ``4 frames`` (nouns whose plural adds an s).

    >>> plural(1, "frame"), plural(16, "frame")
    ('1 frame', '16 frames')
    """
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def span(values, percent: bool = False, decimals: int = 2) -> str:
    """The range of ``values`` in prose: one value when they all print alike, else ``low to high``
    (percentages with ``percent``); never a hyphen that reads as a minus sign.

    >>> span([0.27, 0.27], percent=True), span([-0.0008, 0.0094], decimals=4), span([0.93, 0.99])
    ('27%', '−0.0008 to 0.0094', '0.93 to 0.99')
    """
    values = [float(v) for v in values]
    show = (lambda v: f"{v:.0%}") if percent else (lambda v: f"{v:.{decimals}f}".replace("-", "−"))
    low, high = show(min(values)), show(max(values))
    return low if low == high else f"{low} to {high}"


def _is_number(value) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, (bool, np.bool_))


def _decimals(values: list[float]) -> int | None:
    """None for whole numbers, else the decimals a column of these values is shown with."""
    finite = [v for v in values if math.isfinite(v)]
    if finite and all(float(v).is_integer() for v in finite):
        return None
    for decimals in range(1, _MAX_STATED + 1):  # a column a chapter rounded keeps the precision it chose
        if all(abs(v - round(v, decimals)) <= 1e-12 * max(1.0, abs(v)) for v in finite):
            return decimals
    largest = max((abs(v) for v in finite), default=0.0)
    return 1 if largest >= 100 else 3


def _number(value, decimals: int | None) -> str:
    value = float(value) + 0.0  # + 0.0 turns -0.0 into 0.0: a rounded zero has no sign
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if decimals is None:
        return f"{int(value):d}"
    text = f"{value:.{decimals}f}"
    if value != 0 and float(text) == 0:  # would read as an exact zero
        return f"{value:.1e}"
    return text


def _other(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(str(v) for v in value)
    return str(value)


def format_column(values: pd.Series, name) -> pd.Series:
    """The column ``values`` (called ``name``) as the strings the page shows; see the module rules."""
    p_values = is_p_column(name)
    numeric = [float(v) for v in values if _is_number(v) and not _missing(v)]
    decimals = _decimals(numeric)
    out = []
    for v in values:
        if _missing(v):
            out.append(MISSING)
        elif _is_number(v):
            out.append(format_p(v) if p_values else _number(v, decimals))
        else:
            out.append(_other(v))
    return pd.Series(out, index=values.index, dtype=object)


def formatted(table: pd.DataFrame | pd.Series) -> pd.DataFrame:
    """``table`` with every cell turned into the string the page shows (a Series becomes one column)."""
    if isinstance(table, pd.Series):
        table = table.to_frame(name=table.name if table.name is not None else "value")
    out = table.copy()
    out.columns = out.columns  # keep MultiIndex columns as they are
    for position in range(out.shape[1]):
        name = out.columns[position]
        label = name[-1] if isinstance(name, tuple) else name
        out.isetitem(position, format_column(out.iloc[:, position].astype(object), label))
    if not isinstance(out.index, pd.RangeIndex):
        out.index = pd.Index([MISSING if _missing(i) else _other(i) if not isinstance(i, tuple) else i
                              for i in out.index], name=out.index.name) if out.index.nlevels == 1 else out.index
    return out


def _label(label) -> str:
    if isinstance(label, tuple):
        return " · ".join(str(x) for x in label if x is not None and str(x) != "")
    return "" if label is None else str(label)


def _header(label) -> str:
    # Long snake_case names may break after an underscore instead of widening the table.
    return html.escape(_label(label)).replace("_", "_<wbr>")


def _row_cells(values, kinds) -> str:
    return "".join(f'<td class="{k}">{html.escape(v)}</td>' for v, k in zip(values, kinds))


def to_html(table: pd.DataFrame | pd.Series) -> str:
    """``table`` as the page shows it: formatted cells (numbers right-aligned, never wrapped) in a
    sideways scroller; the index is shown as leading columns unless it is only row numbers."""
    if isinstance(table, pd.Series):
        table = table.to_frame(name=table.name if table.name is not None else "value")
    shown = formatted(table)
    kinds = table.apply(lambda col: col.map(lambda v: "num" if _is_number(v) or _missing(v) else "text"))
    show_index = not isinstance(table.index, pd.RangeIndex)
    index_names = [n for n in table.index.names] if show_index else []
    columns_name = _label(tuple(table.columns.names)) if table.columns.nlevels > 1 else _label(table.columns.name)
    if index_names and columns_name:  # a pivot: say what the rows and the columns are
        index_names[-1] = f"{_label(index_names[-1])} ↓ {columns_name} →"
    head = "".join(f"<th>{_header(n)}</th>" for n in index_names) + \
        "".join(f"<th>{_header(c)}</th>" for c in table.columns)
    rows = []
    for position in range(len(shown)):
        index = table.index[position]
        index_values = (list(index) if isinstance(index, tuple) else [index]) if show_index else []
        # not class="row": the theme's Bootstrap lays out .row as a wrapping flex box, shifting the cells
        index_cells = "".join(f'<td class="vt-index">{html.escape(MISSING if _missing(v) else _other(v))}</td>'
                              for v in index_values)
        rows.append(f"<tr>{index_cells}{_row_cells(shown.iloc[position].tolist(), kinds.iloc[position].tolist())}</tr>")
    return (f'<div class="{SCROLLER_CLASS}" style="overflow-x: auto; max-width: 100%;">'
            f'<table class="dataframe vtalign"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody>'
            f"</table></div>")


def install() -> None:
    """Render every ``DataFrame`` and ``Series`` a cell displays with :func:`to_html` (IPython only)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency of the book
        return
    shell = get_ipython()
    if shell is None:
        return
    formatters = shell.display_formatter.formatters
    for kind in (pd.DataFrame, pd.Series):
        formatters["text/html"].for_type(kind, to_html)
        formatters["text/plain"].for_type(kind, lambda obj, p, cycle: p.text(formatted(obj).to_string()))


def markdown_cell(text) -> str:
    r"""``text`` as one cell of a Markdown pipe table: pipes escaped, line breaks as spaces.

    >>> print(markdown_cell("a | b\nc"))
    a \| b c
    """
    return str(text).replace("|", "\\|").replace("\n", " ")
