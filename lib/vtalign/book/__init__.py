"""What the book's chapters call: the papermill runner, the figures, the published numbers,
the live measurements and the benchmark tables.

- :mod:`~vtalign.book.runner`: ``python -m vtalign.book`` (run chapters, write the reproducibility page);
- :mod:`~vtalign.book.figures`: one plotting function per figure, and saving helpers;
- :mod:`~vtalign.book.paper`: the paper's published numbers with their provenance;
- :mod:`~vtalign.book.live`: live measurements (extraction + alignment) for the live scaling and temporal chapters;
- :mod:`~vtalign.book.downstream`: Figures 2, 4 and 10 measured live (vision variants, probes, correlations);
- :mod:`~vtalign.book.reordering`: Figure 6 measured live (reorder negatives, real-paragraph distances);
- :mod:`~vtalign.book.performance`: benchmark records as tables and targets.

This package sits on top: it imports the core and :mod:`vtalign.extract`, never the reverse.
"""
import warnings

# Chapters run in a kernel without ipywidgets; a model loader's `tqdm.auto` import would print this
# warning into the executed chapter. vtalign's own bars go to the terminal (see runner.run_notebook).
warnings.filterwarnings("ignore", message="IProgress not found")

from . import downstream, figures, live, paper, performance, reordering
from .paper import load_published, provenance
from .runner import NOTEBOOKS, Notebook, notebook, run_all, run_notebook, write_build_status, write_reproducibility_page

__all__ = ["downstream", "figures", "live", "paper", "performance", "reordering", "load_published", "provenance",
           "NOTEBOOKS", "Notebook", "notebook", "run_all", "run_notebook", "write_reproducibility_page",
           "write_build_status"]
