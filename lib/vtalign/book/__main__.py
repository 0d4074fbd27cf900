"""``python -m vtalign.book``: see :mod:`vtalign.book.runner`."""
import sys

from .runner import main

sys.exit(main())
