"""The seed project's real hitmap files (``tb/fixtures/grp19/``) and their known contents.

``KNOWN`` holds what a correct reader must report for each file: the seed's 100 forward calls,
vectors per call, signature length and the final cumulative counters of the last row.
"""

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "grp19"

# Every seed fixture: calls, V per call, L, final cumulative hits, final cumulative misses.
KNOWN = {
    "qf0.8/googlenet-hitmap-020.csv": (100, 1792, 12, 72908, 106292),
    "qf0.8/googlenet-hitmap-050.csv": (100, 1792, 6, 89524, 89676),
    "qf0.8/resnet101-hitmap-001.csv": (100, 5376, 180, 42, 537558),
    "qf0.3/googlenet-hitmap-050.csv": (100, 1792, 3, 177408, 1792),
    "qf0.3/resnet101-hitmap-001.csv": (100, 5376, 68, 1162, 536438),
}
ROW_SHAPE = "a row is N,C,H,W,V,L,cumulative_hits,cumulative_misses then exactly V bits"
