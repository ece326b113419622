"""Fixtures of the inferer tests."""

import pytest
import torch
from inferer_fixtures import make_net


@pytest.fixture
def net() -> torch.nn.Module:
    return make_net()
