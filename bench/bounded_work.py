"""Bounded work per request (issue 17 item 1): a huge segmentation request cannot hold the device.

Starts `ai4med serve` (a subprocess, as an operator runs it) with a segmentation model (UNet
16-128 filters, 96^3 scan windows, the size `bench/annotation.py` serves) and a DEXTR3D model
(24^3 ROI), then measures:

1. default limits: a 143 KB `.nii.gz` of zeros declaring BIG^3 voxels -> answered at once
   (413, over `max_work_voxels`), and a 24^3 DEXTR3D request sent right behind it;
2. limit raised (`--max-work-voxels 0`): the BIG^3 request runs; 1 s later a 24^3 DEXTR3D
   request is sent: its latency (the small lane; the big job yields between windows),
   and the big one's status/latency (422 at `--max-request-seconds`, or 200);
3. a BIG^3 request whose client disconnects: the server log shows it stopped;
4. SIGTERM while a BIG^3 request computes: seconds until the process exits.

Usage:
    .venv/bin/python bench/bounded_work.py                 # BIG=320, --max-request-seconds 20
    .venv/bin/python bench/bounded_work.py --big 256 --device cuda
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

LIMIT = "----------lImIt_of_THE_fIle_eW_$"


def build(root: str, device: str) -> str:
    import torch

    from ai4med.components.models.unet import Unet

    os.makedirs(os.path.join(root, "models"), exist_ok=True)
    pool = []
    for name, kind, n_in, roi, channels in (("seg", "segmentation", 1, 96, [16, 32, 64, 128]),
                                            ("dextr", "annotation", 2, 24, [8, 16])):
        torch.manual_seed(0)
        args = {"num_classes": 2, "num_in_channels": n_in, "n_spatial_dim": 3, "channels": channels,
                "strides": [2] * (len(channels) - 1), "num_res_units": 1, "norm": "batch"}
        torch.save({"model": Unet(**args).get_module().state_dict(), "epoch": 1},
                   os.path.join(root, "models", f"{name}.pt"))
        cfg = {"version": "3", "type": kind, "labels": ["x"], "model_path": f"models/{name}.pt",
               "network": {"name": "Unet", "args": args}, "roi": [roi] * 3, "padding": 3.0,
               "runtime": "torch", "precision": "fp32", "device": device}
        path = os.path.join(root, f"{name}.json")
        with open(path, "w") as fh:
            json.dump(cfg, fh)
        cls = "SegmentationEngine" if kind == "segmentation" else "Dextr3dCroppedEngine"
        mod = "ai4med.server.engines.segmentation" if kind == "segmentation" else "medical.aas.dextr3dcropped"
        pool.append({"name": name, "class": cls, "module": mod, "config_file": path, "labels": ["x"]})
    pool_path = os.path.join(root, "engine_pool.json")
    with open(pool_path, "w") as fh:
        json.dump(pool, fh)
    return pool_path


def volume(path: str, n: int, zeros: bool) -> None:
    import nibabel as nib

    data = np.zeros((n,) * 3, np.int16)
    if not zeros:
        data[6:18, 6:18, 6:18] = 200
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)


def body(path: str, params: dict) -> bytes:
    with open(path, "rb") as fh:
        payload = fh.read()
    return (f'--{LIMIT}\r\nContent-Disposition: form-data; name="params"\r\n\r\n{json.dumps(params)}'
            f'\r\n--{LIMIT}\r\nContent-Disposition: form-data; name="datapoint"; filename="x.nii.gz"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode() + payload + f"\r\n--{LIMIT}--\r\n".encode()


def post(port: int, path: str, data: bytes, out: dict | None = None, key: str = "") -> tuple[int, float, bytes]:
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
    try:
        conn.request("POST", path, data, {"content-type": f"multipart/form-data; boundary={LIMIT}"})
        r = conn.getresponse()
        reply = r.read()
        status = r.status
    except (ConnectionError, http.client.HTTPException) as exc:
        status, reply = -1, str(exc).encode()
    conn.close()
    res = (status, time.perf_counter() - t0, reply)
    if out is not None:
        out[key] = res
    return res


def reply_params(reply: bytes) -> dict:
    """The `params` part of a multipart reply."""
    part = reply.split(b'name="params"', 1)[1].split(b"\r\n\r\n", 1)[1]
    return json.loads(part.split(b"\r\n--", 1)[0])


def serve(pool: str, root: str, extra: list[str], device: str) -> tuple[subprocess.Popen, int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    log = open(os.path.join(root, f"server-{port}.log"), "w")
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "ai4med", "serve", "--config", pool, "--port", str(port),
                             "--device", device, "--workspace", os.path.join(root, f"ws{port}"), *extra],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    t0 = time.time()
    while time.time() - t0 < 120:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/v1/models")
            if c.getresponse().status == 200:
                return proc, port
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("server did not start")


def stop(proc: subprocess.Popen) -> float:
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    proc.wait(600)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--big", type=int, default=320)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--max-request-seconds", default="20")
    ap.add_argument("--graceful-timeout", default="5", help="of the server SIGTERM'd in step 4")
    ap.add_argument("--steps", default="1234", help="which of the steps to run")
    args = ap.parse_args(argv)
    root = tempfile.mkdtemp(prefix="bench-bounded-")
    pool = build(root, args.device)
    big, small = os.path.join(root, "big.nii.gz"), os.path.join(root, "small.nii.gz")
    volume(big, args.big, zeros=True)
    volume(small, 24, zeros=False)
    big_body = body(big, {})
    pts = [[6, 12, 12], [17, 12, 12], [12, 6, 12], [12, 17, 12], [12, 12, 6], [12, 12, 17]]
    small_body = body(small, {"points": pts})
    seg, dex = "/v1/segmentation?model=seg", "/v1/dextr3d?model=dextr"
    print(f"big: {args.big}^3 zeros, upload {len(big_body) / 1e3:.0f} KB; small: DEXTR3D 24^3; device {args.device}")

    smalls: list = []
    if "1" in args.steps:
        step1(pool, root, args, seg, dex, big_body, small_body)
    if "2" in args.steps or "3" in args.steps:
        smalls = step23(pool, root, args, seg, dex, big_body, small_body)
    if "4" in args.steps:
        step4(pool, root, args, seg, big_body)
    if smalls:
        print(f"BENCH small_behind_big_s {max(d for _, d in smalls):.3f}")
    return 0


def step1(pool, root, args, seg, dex, big_body, small_body) -> None:
    proc, port = serve(pool, root, [], args.device)
    post(port, dex, small_body)  # warm-up
    res: dict = {}
    t = threading.Thread(target=post, args=(port, seg, big_body, res, "big"))
    t.start()
    time.sleep(0.05)
    status, dt, _ = post(port, dex, small_body)
    t.join()
    b = res["big"]
    print(f"1 default limits: big -> {b[0]} in {b[1]:.2f} s ({json.loads(b[2])['error'][:90]}...); "
          f"small behind it -> {status} in {dt:.2f} s")
    print(f"  SIGTERM idle server: exit in {stop(proc):.2f} s")


def step23(pool, root, args, seg, dex, big_body, small_body) -> list:
    proc, port = serve(pool, root, ["--max-work-voxels", "0", "--max-request-seconds", args.max_request_seconds],
                       args.device)
    post(port, dex, small_body)
    res = {}
    t = threading.Thread(target=post, args=(port, seg, big_body, res, "big"))
    t.start()
    time.sleep(1.0)
    smalls = [post(port, dex, small_body)[:2] for _ in range(3)]
    t.join()
    b = res["big"]
    msg = json.loads(b[2]).get("error", "")[:100] if b[0] != 200 else "ok"
    if b[0] == 200:
        msg = f"latencies {reply_params(b[2]).get('latencies')}"
    print(f"2 --max-work-voxels 0 --max-request-seconds {args.max_request_seconds}: 3 small requests sent 1 s "
          f"after the big one -> {[s for s, _ in smalls]} in {', '.join(f'{d:.2f}' for _, d in smalls)} s; "
          f"big -> {b[0]} in {b[1]:.1f} s ({msg})")

    if "3" not in args.steps:
        stop(proc)
        return smalls
    # 3. client disconnects during the big request
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
    conn.request("POST", seg, big_body, {"content-type": f"multipart/form-data; boundary={LIMIT}"})
    time.sleep(2.0)
    t0 = time.perf_counter()
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    status, dt = post(port, dex, small_body)[:2]
    time.sleep(1.0)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", "/")
    queues = json.loads(c.getresponse().read())["queues"]
    print(f"3 big request's client disconnected after 2 s: small after it -> {status} in {dt:.2f} s; "
          f"queues {time.perf_counter() - t0:.1f} s later: {queues}")

    stop(proc)
    return smalls


def step4(pool, root, args, seg, big_body) -> None:
    proc, port = serve(pool, root, ["--max-work-voxels", "0", "--max-request-seconds", "0",
                                    "--graceful-timeout", args.graceful_timeout], args.device)
    res: dict = {}
    t = threading.Thread(target=post, args=(port, seg, big_body, res, "big"))
    t.start()
    time.sleep(2.0)
    took = stop(proc)
    t.join()
    print(f"4 SIGTERM 2 s into a big request (no time limit, --graceful-timeout {args.graceful_timeout}): "
          f"server exited in {took:.2f} s (rc {proc.returncode}); big -> {res['big'][0]}")


if __name__ == "__main__":
    sys.exit(main())
