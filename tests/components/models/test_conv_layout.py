"""Per-convolution layouts (`channels_last: "auto"`): same values, chosen by timing, cached, training only."""

from __future__ import annotations

import json
import os

import pytest
import torch

from ai4med.components.models import conv_layout as CL


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.BatchNorm3d(4), torch.nn.PReLU(),
        torch.nn.Conv3d(4, 4, 3, padding=1), torch.nn.BatchNorm3d(4), torch.nn.PReLU(),
        torch.nn.ConvTranspose3d(4, 2, 2, stride=2))


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AI4MED_CACHE_DIR", str(tmp_path / "cache"))


def _forced(monkeypatch, first_ms: float, last_ms: float) -> list[str]:
    calls: list[str] = []

    def fake(m, site, device, amp, backward, repeats):
        calls.append(type(m).__name__)
        return first_ms, last_ms

    monkeypatch.setattr(CL, "_time_layer", fake)
    return calls


def test_channels_last_where_it_wins_with_the_same_values_and_gradients(monkeypatch):
    net, x = _net(), torch.randn(2, 1, 8, 8, 8)
    ref_net = _net()
    ref_net.load_state_dict(net.state_dict())
    keys = list(net.state_dict())
    _forced(monkeypatch, first_ms=10.0, last_ms=5.0)
    choices = CL.tune_conv_layouts(net, x)
    assert [c.name for c in choices] == ["0", "3", "6"] and all(c.channels_last for c in choices)
    assert CL.channels_last_convs(net) == ["0", "3", "6"]
    assert list(net.state_dict()) == keys  # no wrapper modules: checkpoints are unchanged

    seen = []  # what the convolution itself receives: channels-last in training, channels-first in eval
    net[3].register_forward_pre_hook(lambda m, a: seen.append(a[0].is_contiguous(memory_format=torch.channels_last_3d)))
    net.train(), ref_net.train()
    out, ref = net(x), ref_net(x)
    assert seen == [True] and out.is_contiguous()  # the next layer gets channels-first again
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    out.square().sum().backward()
    ref.square().sum().backward()
    for p, q in zip(net.parameters(), ref_net.parameters()):  # (a bias before batch norm has a ~0 gradient)
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-4 * float(q.grad.abs().max()) + 5e-5)

    net.eval()
    with torch.no_grad():
        net(x)
    assert seen == [True, False]
    CL.clear_conv_layouts(net)
    assert CL.channels_last_convs(net) == []


def test_a_layer_stays_channels_first_unless_channels_last_is_clearly_faster(monkeypatch):
    net, x = _net(), torch.randn(2, 1, 8, 8, 8)
    _forced(monkeypatch, first_ms=10.0, last_ms=9.5)  # 5 % faster: inside the noise margin
    choices = CL.tune_conv_layouts(net, x, use_cache=False)
    assert choices and not any(c.channels_last for c in choices)
    assert CL.channels_last_convs(net) == []


def test_choices_are_cached_per_machine_and_shape_and_reused(monkeypatch, tmp_path):
    net, x = _net(), torch.randn(2, 1, 8, 8, 8)
    calls = _forced(monkeypatch, first_ms=10.0, last_ms=5.0)
    CL.tune_conv_layouts(net, x)
    assert len(calls) == 3
    entries = json.loads(CL.cache_path().read_text())
    assert len(entries) == 3 and all(v["channels_last"] for v in entries.values())
    assert any("Conv3d 4->4 k(3, 3, 3)" in k and "in(2, 4, 8, 8, 8)" in k for k in entries)

    again = CL.tune_conv_layouts(_net(), x)  # a new process on this machine: nothing timed
    assert len(calls) == 3 and all(c.cached and c.channels_last for c in again)
    CL.tune_conv_layouts(_net(), torch.randn(2, 1, 16, 8, 8))  # another shape is timed
    assert len(calls) == 6
    other = "SSE41" if os.environ.get("ONEDNN_MAX_CPU_ISA") == "AVX2" else "AVX2"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", other)  # another instruction-set cap is another machine
    CL.tune_conv_layouts(_net(), x)
    assert len(calls) == 9

    CL.cache_path().write_text("{not json")  # a damaged cache is timed again and rewritten
    CL.tune_conv_layouts(_net(), x)
    assert len(calls) == 12 and len(json.loads(CL.cache_path().read_text())) == 3


def test_real_timing_picks_a_layout_for_every_convolution_and_keeps_the_bn_statistics():
    net, x = _net(), torch.randn(2, 1, 16, 16, 16)
    stats = {k: v.clone() for k, v in net.state_dict().items()}
    net.train()
    choices = CL.tune_conv_layouts(net, x, repeats=2, use_cache=False)
    assert len(choices) == 3 and all(c.first_ms > 0 and c.last_ms > 0 for c in choices)
    assert choices[0].signature.endswith("fwd+bwd")  # the first layer's input needs no gradient
    assert choices[1].signature.endswith("fwd+bwd +gin")
    assert net.training  # its mode is restored
    for k, v in net.state_dict().items():  # running means, variances and weights untouched
        assert torch.equal(v, stats[k]), k
    lines = list(CL.iter_choices(choices))
    assert len(lines) == 3 and all("->" in ln for ln in lines)
