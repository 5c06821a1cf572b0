"""Make tests/vectors.py and tests/integration/helpers.py importable from every test."""

import sys
from pathlib import Path

HERE = Path(__file__).parent
for p in (HERE, HERE / "integration", HERE / "system", HERE.parent / "fuzz"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))
