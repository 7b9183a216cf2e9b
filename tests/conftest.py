"""Shared test set-up: one thread per test process (the CI machine has 2 cores), repo paths."""
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo() -> Path:
    return REPO
