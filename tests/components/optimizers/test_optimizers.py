"""Optimizer components: build from JSON args, map seed arg names, and step like torch."""

import copy

import pytest
import torch
from monai.optimizers import Novograd

from ai4med.components.optimizers.catalog import REGISTRY

EXPECTED = {
    "Adam": (torch.optim.Adam, {"betas": (0.9, 0.999), "eps": 1e-8}),
    "AdamW": (torch.optim.AdamW, {"weight_decay": 0.01}),
    "Momentum": (torch.optim.SGD, {"momentum": 0.9}),
    "SGD": (torch.optim.SGD, {"momentum": 0.0}),
    "NovoGrad": (Novograd, {"betas": (0.95, 0.98), "grad_averaging": False}),
    "Novograd": (Novograd, {"betas": (0.95, 0.98)}),
}


def _quadratic_steps(opt, w, n=5):
    for _ in range(n):
        opt.zero_grad()
        loss = ((w - 3.0) ** 2).sum()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("name", REGISTRY.names())
def test_optimizer_builds_and_matches_torch(name):
    cls, defaults = EXPECTED[name]
    w = torch.nn.Parameter(torch.zeros(4))
    opt = REGISTRY.get(name)(**{}).get_optimizer([w], learning_rate=0.1)
    assert type(opt) is cls
    group = opt.param_groups[0]
    assert group["lr"] == 0.1
    for k, v in defaults.items():
        assert group[k] == v
    # same trajectory as the torch optimizer built directly
    w_ref = torch.nn.Parameter(torch.zeros(4))
    ref = cls([w_ref], lr=0.1, **{k: group[k] for k in defaults})
    _quadratic_steps(opt, w)
    _quadratic_steps(ref, w_ref)
    torch.testing.assert_close(w.data, w_ref.data)
    assert float(((w.detach() - 3) ** 2).sum()) < 36.0


def test_seed_argument_names_and_own_learning_rate():
    w = torch.nn.Parameter(torch.zeros(2))
    opt = REGISTRY.get("Adam")(learning_rate=0.5, epsilon=1e-6, beta1=0.8).get_optimizer([w], learning_rate=0.1)
    g = opt.param_groups[0]
    assert (g["lr"], g["eps"], g["betas"]) == (0.5, 1e-6, (0.8, 0.999))
    mom = REGISTRY.get("Momentum")(lr=0.2, momentum=0.5, use_nesterov=True).build([w])
    assert (mom.param_groups[0]["lr"], mom.param_groups[0]["momentum"], mom.param_groups[0]["nesterov"]) == (
        0.2, 0.5, True)
    nov = REGISTRY.get("NovoGrad")(epsilon=1e-5, weight_decay=1e-3, grad_averaging=True).get_optimizer([w], 0.01)
    assert (nov.param_groups[0]["eps"], nov.param_groups[0]["weight_decay"]) == (1e-5, 1e-3)
    with pytest.raises(ValueError, match="learning_rate"):
        REGISTRY.get("SGD")().get_optimizer([w])


def test_adam_is_fused_where_torch_can_and_takes_the_same_steps():
    from ai4med.components.optimizers.optimizers import Adam, AdamW

    torch.manual_seed(0)
    ref_net = torch.nn.Sequential(torch.nn.Conv3d(1, 4, 3), torch.nn.Conv3d(4, 2, 1))
    nets = {name: copy.deepcopy(ref_net) for name in ("fused", "plain")}
    opts = {"fused": Adam().get_optimizer(nets["fused"].parameters(), 1e-2),
            "plain": Adam(fused=False).get_optimizer(nets["plain"].parameters(), 1e-2)}
    assert opts["fused"].defaults["fused"] is True and not opts["plain"].defaults["fused"]
    x = torch.randn(2, 1, 6, 6, 6)
    for _ in range(5):
        for name, net in nets.items():
            opts[name].zero_grad()
            net(x).square().mean().backward()
            opts[name].step()
    for p, q in zip(nets["fused"].parameters(), nets["plain"].parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert AdamW().get_optimizer(ref_net.parameters(), 1e-3).defaults["fused"] is True

    class NoFusedKernel(torch.optim.Adam):  # a device or dtype without a fused kernel: torch raises
        def __init__(self, params, fused=None, **kw):
            if fused:
                raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of "
                                   "supported devices")
            super().__init__(params, **kw)

    class Fallback(Adam):
        def _cls(self):
            return NoFusedKernel

    opt = Fallback().get_optimizer(iter(ref_net.parameters()), 1e-3)  # a generator is consumed only once
    assert type(opt) is NoFusedKernel and not opt.defaults["fused"]
    assert len(opt.param_groups[0]["params"]) == 4
