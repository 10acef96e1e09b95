"""``python -m hfrag``: the same as the ``hfrag`` command."""

from __future__ import annotations

import sys

from hfrag.cli import main

if __name__ == "__main__":
    sys.exit(main())
