"""Session-wide synthetic data for the training tests."""

import pytest

from ai4med.datasets.synthetic import make_synthetic_dataset


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("syn")
    make_synthetic_dataset(str(out), num_cases=4, size=24, seed=1, num_validation=2)
    return out
