"""Fixtures of the sweep tests."""

import pytest


@pytest.fixture(scope="session")
def weights(tmp_path_factory):
    """ResNet-18's seeded random weights (model seed 0) saved once as a state_dict: loading it
    skips the BatchNorm calibration that building them costs in every Dask worker process."""
    import torch

    from golden.models import build_model

    path = tmp_path_factory.mktemp("weights") / "resnet18-seed0.pth"
    torch.save(build_model("resnet18", seed=0).state_dict(), path)
    return path
