"""Shared test settings: small thread pools, so the suite behaves the same on a 2-core CI machine; torch's
compiler cache under pytest's temp."""

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session", autouse=True)
def torch_compiler_cache_inside_the_test_temp(tmp_path_factory):
    """torch makes its compiler's cache folder (``torchinductor_<user>`` in the system temp) whenever an
    optimizer or ``torch.compile`` first runs in a process; the tests' own go under pytest's temp instead
    (child processes inherit the variable)."""
    if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(tmp_path_factory.mktemp("torchinductor"))
    yield
