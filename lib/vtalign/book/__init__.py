"""What the book's chapters call: the papermill runner, the figures, the published numbers,
the live measurements and the benchmark tables.

- :mod:`~vtalign.book.runner`: ``python -m vtalign.book`` (run chapters, write the reproducibility page);
- :mod:`~vtalign.book.figures`: one plotting function per figure, and saving helpers;
- :mod:`~vtalign.book.paper`: the paper's published numbers with their provenance;
- :mod:`~vtalign.book.live`: live measurements (extraction + alignment) for the live chapters;
- :mod:`~vtalign.book.performance`: benchmark records as tables and targets.

This package sits on top: it imports the core and :mod:`vtalign.extract`, never the reverse.
"""
from . import figures, live, paper, performance
from .paper import load_published, provenance
from .runner import (NOTEBOOKS, Notebook, notebook, run_all, run_notebook, write_build_status,
                     write_reproducibility_page)

__all__ = ["figures", "live", "paper", "performance", "load_published", "provenance", "NOTEBOOKS", "Notebook",
           "notebook", "run_all", "run_notebook", "write_reproducibility_page", "write_build_status"]
