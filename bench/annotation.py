"""DEXTR3D request latency of the annotation server (128^3 ROI), sequential and 8 concurrent clients.

Builds a DEXTR3D model (MONAI UNet, 2 -> 2 channels; random weights: the work per request
is the same as a trained model's) saved as a training checkpoint, writes engine_pool.json
and the model config (seed 004 format), starts the real server (uvicorn) on a loopback
port, and posts `/v1/dextr3d` exactly as the AIAA Python client does (multipart with the
`$` boundary, a pre-processed 128^3 int16 ROI as `.nii.gz`, ROI-space points). Latency is
the client-side wall time of a whole request (upload, decode, guidance, inference, write,
reply). Prints p50 / p95 per mode and ends with `BENCH dextr3d_p50_s <sequential p50>`.

Usage:
    .venv/bin/python bench/annotation.py                     # 10 sequential, 8 clients x 2
    .venv/bin/python bench/annotation.py --requests 5 --concurrency 8 --per-client 1
    .venv/bin/python bench/annotation.py --channels 16,32,64,128 --runtime torch
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time

import numpy as np

LIMIT = "----------lImIt_of_THE_fIle_eW_$"


def build(root: str, roi: int, channels: list[int], runtime: str, precision: str) -> str:
    import torch

    from ai4med.components.models.unet import Unet

    torch.manual_seed(0)
    args = {"num_classes": 2, "num_in_channels": 2, "n_spatial_dim": 3, "channels": channels,
            "strides": [2] * (len(channels) - 1), "num_res_units": 1, "norm": "batch"}
    model = Unet(**args)
    os.makedirs(os.path.join(root, "models"), exist_ok=True)
    torch.save({"model": model.get_module().state_dict(), "epoch": 1}, os.path.join(root, "models", "model.pt"))
    cfg = {
        "version": "3", "type": "annotation", "labels": ["spleen"], "model format": "checkpoint",
        "model_path": "models/model.pt", "network": {"name": "Unet", "args": args}, "thresh": 0.5,
        "roi": [roi] * 3, "padding": 20.0, "runtime": runtime, "precision": precision,
        "pre_transforms": [
            {"name": "transforms.VolumeTo4dArray", "fields": ["image", "label"]},
            {"name": "transforms.NormalizeNonzeroIntensities", "fields": "image"},
            {"name": "transforms.AddExtremePointsChannel", "image field": "image", "label field": "label",
             "sigma": 3, "pert": 0},
        ],
    }
    cfg_path = os.path.join(root, "annotation_spleen.json")
    with open(cfg_path, "w") as fh:
        json.dump(cfg, fh)
    pool = [{"name": "annotation_ct_spleen", "class": "Dextr3dCroppedEngine", "module": "medical.aas.dextr3dcropped",
             "config_file": cfg_path, "labels": ["spleen"]}]
    pool_path = os.path.join(root, "engine_pool.json")
    with open(pool_path, "w") as fh:
        json.dump(pool, fh)
    return pool_path


def roi_image(path: str, roi: int) -> list[list[int]]:
    """A 128^3 int16 CT-like ROI (as the client's resampler writes it) and its 6 ROI-space extreme points."""
    import nibabel as nib

    g = np.meshgrid(*[np.linspace(-1, 1, roi)] * 3, indexing="ij")
    blob = sum((x / 0.6) ** 2 for x in g) < 1
    rng = np.random.default_rng(0)
    data = (rng.normal(0, 15, (roi,) * 3) + 150 * blob - 80).astype(np.int16)
    nib.save(nib.Nifti1Image(data, np.diag([1.1, 1.1, 1.6, 1.0])), path)
    c, r = roi // 2, int(0.6 * roi / 2)
    return [[c - r, c, c], [c + r, c, c], [c, c - r, c], [c, c + r, c], [c, c, c - r], [c, c, c + r]]


def request_body(path: str, points: list[list[int]]) -> bytes:
    with open(path, "rb") as fh:
        payload = fh.read()
    return (f'--{LIMIT}\r\nContent-Disposition: form-data; name="params"\r\n\r\n{json.dumps({"points": points})}'
            f'\r\n--{LIMIT}\r\nContent-Disposition: form-data; name="datapoint"; filename="{path}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode() + payload + f"\r\n--{LIMIT}--\r\n".encode()


def one_request(port: int, body: bytes) -> float:
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("POST", "/v1/dextr3d?model=annotation_ct_spleen", body,
                 {"content-type": f"multipart/form-data; boundary={LIMIT}", "content-length": str(len(body))})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    if r.status != 200 or b'filename="result.nii.gz"' not in data:
        raise RuntimeError(f"request failed: {r.status} {data[:200]!r}")
    return time.perf_counter() - t0


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--roi", type=int, default=128)
    ap.add_argument("--channels", default="16,32,64,128", help="UNet filters per level")
    ap.add_argument("--runtime", default="auto", help="auto (openvino for precision auto on CPU, else torch), torch, onnxruntime or openvino")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--requests", type=int, default=10, help="sequential requests (after 1 warm-up)")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--per-client", type=int, default=2, help="requests per concurrent client")
    args = ap.parse_args(argv)

    import uvicorn

    from ai4med.server.app import create_app
    from ai4med.server.settings import ServerSettings

    root = tempfile.mkdtemp(prefix="bench-aiaa-")
    pool = build(root, args.roi, [int(c) for c in args.channels.split(",")], args.runtime, args.precision)
    img = os.path.join(root, "roi.nii.gz")
    points = roi_image(img, args.roi)
    body = request_body(img, points)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(ServerSettings(engine_pool=pool, workspace=os.path.join(root, "ws")))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    t0 = time.perf_counter()
    thread.start()
    while not server.started:
        if not thread.is_alive():
            print("server failed to start", file=sys.stderr)
            return 1
        time.sleep(0.05)
    startup = time.perf_counter() - t0

    import torch

    print(f"DEXTR3D {args.roi}^3 ROI, UNet channels {args.channels}, runtime {args.runtime}, "
          f"torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}, upload {len(body) / 1e6:.1f} MB, "
          f"server start {startup:.1f}s")
    one_request(port, body)  # warm-up
    seq = [one_request(port, body) for _ in range(args.requests)]
    conc: list[float] = []
    lock = threading.Lock()

    def client() -> None:
        for _ in range(args.per_client):
            dt = one_request(port, body)
            with lock:
                conc.append(dt)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    server.should_exit = True
    thread.join(60)

    print(f"{'mode':<28}{'n':>4}{'p50 s':>9}{'p95 s':>9}{'mean s':>9}{'req/s':>8}")
    print(f"{'sequential':<28}{len(seq):>4}{pct(seq, 50):>9.3f}{pct(seq, 95):>9.3f}{statistics.mean(seq):>9.3f}"
          f"{len(seq) / sum(seq):>8.2f}")
    print(f"{f'{args.concurrency} concurrent clients':<28}{len(conc):>4}{pct(conc, 50):>9.3f}{pct(conc, 95):>9.3f}"
          f"{statistics.mean(conc):>9.3f}{len(conc) / wall:>8.2f}")
    print(f"BENCH dextr3d_p50_s {pct(seq, 50):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
