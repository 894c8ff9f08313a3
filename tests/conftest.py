import os
import sys

import pytest
import torch
from hypothesis import settings

# CI gates on a reproducible set of examples (HYPOTHESIS_PROFILE=ci, set by .ci/run); local
# runs draw new ones each time, which is where property tests find new failures.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

sys.path.insert(0, os.path.dirname(__file__))  # shared test helpers (strategies.py)
torch.set_num_threads(int(os.environ.get("LOSSEVO_TEST_THREADS", "1")))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
