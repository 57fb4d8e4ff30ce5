"""``python -m ingmon …`` is the ``ingmon`` command (where the console script is not on PATH)."""

from __future__ import annotations

import sys

from ingmon.cli import main

if __name__ == "__main__":
    sys.exit(main())
