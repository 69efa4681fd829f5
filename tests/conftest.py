"""Fixtures and marker hooks. Helpers live in ``helpers.py``; the names below are re-exported
for tests that still import them from here."""

from __future__ import annotations

import pytest
import torch
from helpers import (  # noqa: F401 (re-exported)
    CUDA_SKIP_PREFIX,
    CUDA_SKIP_REASON,
    DEVICES,
    ODD_SURVEY,
    PACKAGE_PARENT,
    child_env,
    layered_models,
    rel_l2,
    requires_cuda,
)


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """Each device a test should pass on: "cpu", and "cuda" (marked ``cuda``, skipped with a
    visible reason when there is no GPU or no CUDA build)."""
    return torch.device(request.param)


def pytest_collection_modifyitems(config, items) -> None:
    """Mark every test that skips for want of CUDA ``cuda`` (select with ``-m cuda``)."""
    for item in items:
        for mark in item.iter_markers("skipif"):
            if str(mark.kwargs.get("reason", "")).startswith(CUDA_SKIP_PREFIX):
                item.add_marker(pytest.mark.cuda)
                break
