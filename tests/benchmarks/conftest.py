"""The benchmark scripts import each other as siblings (``python benchmarks/run.py``):
their folder goes on the path for these tests."""

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))
