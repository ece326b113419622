"""LR policies: LR values at given steps/epochs/metrics, written into the optimizer."""

import math

import pytest
import torch

from ai4med.components.lr_policies.catalog import REGISTRY


def _opt(lr=1.0):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def test_decay_on_step_values():
    for name in ("DecayOnStep", "DecayLRonStep"):
        policy = REGISTRY.get(name)(decay_ratio=0.5, decay_freq=10)
        assert policy.trigger == "step"
        opt = _opt(0.2)
        got = {s: policy.apply(opt, step=s) for s in (0, 9, 10, 25, 30)}
        assert got == pytest.approx({0: 0.2, 9: 0.2, 10: 0.1, 25: 0.05, 30: 0.025})
        assert opt.param_groups[0]["lr"] == pytest.approx(0.025)
        assert opt.param_groups[0]["initial_lr"] == 0.2


def test_decay_on_step_resumes_from_optimizer_state():
    policy = REGISTRY.get("DecayOnStep")(decay_ratio=0.1, decay_freq=5)
    opt = _opt(1.0)
    policy.apply(opt, step=7)
    state = opt.state_dict()
    resumed = _opt(123.0)  # a fresh optimizer loaded from the checkpoint
    resumed.load_state_dict(state)
    assert policy.apply(resumed, step=12) == pytest.approx(0.01)


def test_reduce_cosine_values():
    policy = REGISTRY.get("ReduceCosine")(rate=0.5)
    assert policy.trigger == "epoch"
    opt = _opt(0.1)
    lrs = [policy.apply(opt, epoch=e, total_epochs=4) for e in range(5)]
    expected = [0.1 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(5)]
    assert lrs == pytest.approx(expected)
    assert lrs[0] == pytest.approx(0.1) and lrs[2] == pytest.approx(0.05) and lrs[4] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="total_epochs"):
        REGISTRY.get("ReduceCosine")().apply(_opt(), epoch=1)


def test_reduce_poly_values():
    policy = REGISTRY.get("ReducePoly")(poly_power=0.9, total_epochs=10)
    opt = _opt(0.01)
    got = [policy.apply(opt, epoch=e) for e in (0, 3, 10)]
    assert got == pytest.approx([0.01, 0.01 * 0.7**0.9, 0.0])


def test_reduce_on_plateau_values_and_state():
    policy = REGISTRY.get("ReduceOnPlateau")(plateau_count_trigger=2, reduction_rate=0.5)
    assert policy.trigger == "validation"
    opt = _opt(1.0)
    metrics = [0.5, 0.6, 0.6, 0.55, 0.7, 0.7, 0.69, 0.69, 0.68]
    lrs = [policy.apply(opt, metric=m) for m in metrics]
    assert lrs == pytest.approx([1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.125])
    state = policy.state_dict()
    fresh = REGISTRY.get("ReduceOnPlateau")(plateau_count_trigger=2, reduction_rate=0.5)
    fresh.load_state_dict(state)
    assert fresh.best == 0.7 and fresh.count == policy.count
    with pytest.raises(ValueError, match="metric"):
        policy.apply(opt)
    low = REGISTRY.get("ReduceOnPlateau")(plateau_count_trigger=1, reduction_rate=0.1, mode="min", min_lr=0.05)
    opt = _opt(1.0)
    assert [low.apply(opt, metric=m) for m in (1.0, 0.5, 0.6, 0.7)] == pytest.approx([1.0, 1.0, 0.1, 0.05])


@pytest.mark.parametrize("name", REGISTRY.names())
def test_every_policy_builds_from_json(name):
    args = {"DecayOnStep": {"decay_ratio": 0.1, "decay_freq": 1}, "DecayLRonStep": {"decay_ratio": 0.1, "decay_freq": 1},
            "ReduceOnPlateau": {"plateau_count_trigger": 1, "reduction_rate": 0.5}}.get(name, {})
    policy = REGISTRY.get(name)(**args)
    opt = _opt(0.3)
    lr = policy.apply(opt, step=1, epoch=1, metric=0.5, total_epochs=3)
    assert 0 < lr <= 0.3
