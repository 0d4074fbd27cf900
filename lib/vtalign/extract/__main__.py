"""``python -m vtalign.extract``: see :mod:`vtalign.extract.cli`."""
import sys

from .cli import main

sys.exit(main())
