"""run_cases pipelined (prefetch + background writes) writes the same files as the sequential path, keeps the
case order, and reports a failed case (read or write) while the others go on."""

from __future__ import annotations

import hashlib
import os

import torch

from ai4med.components.inferers.torch_predictor import TorchInferenceContext
from ai4med.components.transforms.channels import ConvertToChannelsFirst
from ai4med.components.transforms.io import LoadNifti
from ai4med.components.writers.prediction import PredictionWriter
from ai4med.datasets.synthetic import make_synthetic_dataset
from ai4med.inference.pipeline import CasePipeline
from ai4med.inference.runner import run_cases
from ai4med.io.datalist import load_datalist


def _digest(folder: str) -> dict[str, str]:
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(root, f)
            out[os.path.relpath(p, folder)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


def test_pipelined_equals_sequential(tmp_path):
    datalist = make_synthetic_dataset(str(tmp_path / "data"), num_cases=5, size=20, num_validation=5)
    items = load_datalist(datalist, "training") + load_datalist(datalist, "validation")
    torch.manual_seed(0)
    ctx = TorchInferenceContext(torch.nn.Sequential(torch.nn.Conv3d(1, 3, 3, padding=1), torch.nn.Softmax(1)),
                                precision="fp32", runtime="torch")
    items = [{"image": it["image"]} for it in items] + [{"image": str(tmp_path / "missing.nii.gz")}]
    pipeline = CasePipeline(ctx, None, [LoadNifti("image"), ConvertToChannelsFirst("image")], None,
                            [PredictionWriter()])
    seq = run_cases(pipeline, items, str(tmp_path / "seq"), prefetch=0, background_write=False, progress=False)
    par = run_cases(pipeline, items, str(tmp_path / "par"), prefetch=2, background_write=True, progress=False)
    assert [r.name for r in seq] == [r.name for r in par] == [os.path.basename(it["image"]) for it in items]
    assert [r.error is None for r in par] == [True] * 5 + [False] and "missing.nii.gz" in par[-1].error
    assert all("write" in r.seconds and r.outputs for r in par[:5])
    a, b = _digest(str(tmp_path / "seq")), _digest(str(tmp_path / "par"))
    assert len(a) == 5 and a == b


def test_a_failed_background_write_fails_that_case_only(tmp_path):
    datalist = make_synthetic_dataset(str(tmp_path / "data"), num_cases=3, size=16, num_validation=3)
    items = [{"image": it["image"]} for it in load_datalist(datalist, "training") + load_datalist(datalist,
                                                                                                   "validation")]
    ctx = TorchInferenceContext(torch.nn.Conv3d(1, 2, 1), precision="fp32", runtime="torch")

    class Picky(PredictionWriter):
        def write(self, transform_ctx, write_path=None):
            if "case_001" in str(transform_ctx["image"].get_property("filename")):
                raise OSError("disk full")
            return super().write(transform_ctx, write_path)

    pipeline = CasePipeline(ctx, None, [LoadNifti("image"), ConvertToChannelsFirst("image")], None, [Picky()])
    res = run_cases(pipeline, items, str(tmp_path / "out"), progress=False)
    errors = {r.name: r.error for r in res}
    assert len(res) == 3 and [k for k, v in errors.items() if v] == ["case_001.nii.gz"] and "disk full" in errors["case_001.nii.gz"]
    assert sorted(os.listdir(tmp_path / "out")) == ["case_000", "case_002"]


def test_prefetch_depth_follows_the_volume_size():
    from ai4med.inference.runner import MAX_PREFETCH, prefetch_depth

    gib = 1024**3
    assert prefetch_depth(100 * 2**20, 16 * gib) == MAX_PREFETCH  # small volumes: the cap
    assert prefetch_depth(2 * gib, 16 * gib) == 2  # a quarter of 16 GiB holds two 2 GiB cases
    assert prefetch_depth(8 * gib, 16 * gib) == 1  # at least one, however large
    assert prefetch_depth(1000, None) == 1  # memory unknown


def test_the_queue_of_prepared_cases_is_bounded_by_memory(monkeypatch):
    """With prefetch=None the depth comes from the first case's bytes and the available memory; no more cases are
    ever prepared ahead of the one running than that depth."""
    import numpy as np

    from ai4med.inference import runner

    case = np.zeros(1000, np.float32)  # 4000 bytes a case
    monkeypatch.setattr(runner, "available_memory", lambda: 4 * 2 * case.nbytes)  # a quarter holds 2 cases
    state = {"prepared": 0, "run": 0, "ahead": []}

    class Stub:
        image_field, writers = "image", []

        def prepare(self, item):
            state["prepared"] += 1
            return {"image": case.copy()}

        def run(self, item, output_dir, prepared=None, write=True):
            import time

            time.sleep(0.05)  # let the loader run ahead as far as it may
            state["ahead"].append(state["prepared"] - state["run"] - 1)  # prepared, not yet run, besides this one
            state["run"] += 1

            class Out:
                seconds, outputs, ctx = {}, [], None

            return Out()

    res = runner.run_cases(Stub(), [{"image": f"c{i}"} for i in range(8)], progress=False)
    assert [r.error for r in res] == [None] * 8
    assert max(state["ahead"]) == 2 and state["prepared"] == 8


def test_prefetch_prepares_ahead_before_the_consumer_starts():
    """A Prefetch starts on its own: with the depth known, it prepares that many cases before anything is taken
    (what `ai4med infer` does while the model opens), never more, and hands them over in order."""
    import threading

    from ai4med.inference.runner import Prefetch

    prepared, two = [], threading.Event()

    class Stub:
        def prepare(self, item):
            prepared.append(item["image"])
            if len(prepared) == 2:
                two.set()
            return {"image": item["image"]}

    pf = Prefetch(Stub(), [{"image": f"c{i}"} for i in range(5)], prefetch=2)
    assert two.wait(10)
    import time

    time.sleep(0.2)  # room for a third, which must not come
    assert prepared == ["c0", "c1"]
    got = [ctx["image"] for ctx, _ in pf]
    assert got == ["c0", "c1", "c2", "c3", "c4"] and prepared == got
    pf.close()


def test_a_closed_prefetch_stops_preparing():
    from ai4med.inference.runner import Prefetch

    class Stub:
        calls = 0

        def prepare(self, item):
            Stub.calls += 1
            return {"image": item["image"]}

    pf = Prefetch(Stub(), [{"image": f"c{i}"} for i in range(50)], prefetch=1)
    pf.close()
    n = Stub.calls
    assert n <= 2 and list(pf) == []


def test_evaluator_reads_the_first_case_while_the_model_opens(tmp_path, monkeypatch):
    """`evaluator_from_config` starts reading cases before it opens the model: the first case is prepared
    during a (slow) model open, and the run's outputs are those of a run whose model was given."""
    import json
    import threading

    from ai4med.config.workflow_config import load_config
    from ai4med.inference.from_config import EvalOptions
    from ai4med.workflows import bulk_evaluator

    datalist = make_synthetic_dataset(str(tmp_path / "data"), num_cases=3, size=16, num_validation=3)
    config = tmp_path / "config_inference.json"
    config.write_text(json.dumps({"pre_transforms": [
        {"name": "LoadNifti", "args": {"fields": "image"}},
        {"name": "ConvertToChannelsFirst", "args": {"fields": "image"}}]}))
    torch.manual_seed(0)
    net = torch.nn.Conv3d(1, 2, 1)
    prepared_during_open = threading.Event()
    original = CasePipeline.prepare

    def prepare(self, item, rng=None):
        out = original(self, item, rng)
        prepared_during_open.set()
        return out

    def slow_open(cfg, opts):
        assert prepared_during_open.wait(20), "no case was prepared while the model opened"
        return TorchInferenceContext(net, precision="fp32", runtime="torch")

    monkeypatch.setattr(CasePipeline, "prepare", prepare)
    items = [{"image": it["image"]} for key in ("training", "validation") for it in load_datalist(datalist, key)]

    def run(folder, ctx):
        opts = EvalOptions(mode="infer", items=items, output_dir=str(tmp_path / folder), progress=False)
        ev = bulk_evaluator.evaluator_from_config(load_config(str(config)), opts, ctx)
        try:
            return ev.run()
        finally:
            ev.close()

    run("given", TorchInferenceContext(net, precision="fp32", runtime="torch"))
    prepared_during_open.clear()
    monkeypatch.setattr(bulk_evaluator, "make_inference_context", slow_open)
    early = run("early", None)
    assert len(items) == 3 and [c.error for c in early.cases] == [None] * 3 and len(early.written) == 3
    assert _digest(str(tmp_path / "given")) == _digest(str(tmp_path / "early"))
