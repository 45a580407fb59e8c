"""``python perf/run.py ARGS`` = ``python -m perf ARGS`` (see perf/__init__.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from perf.runner import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
