"""Shared test settings: small thread pools, so the suite behaves the same on a 2-core CI machine."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
