"""Seed 004 §6.2: `mpirun -np 2 ... tlt-train ...` with multi_gpu true. mpirun is not installed here,
so the two processes are started with the variables Open MPI's mpirun gives each rank
(OMPI_COMM_WORLD_RANK / _SIZE / _LOCAL_RANK); they train one model together (gloo on CPU)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from seed_helpers import REPO, executable
from test_seed002_byoc import make_mmar


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_mpi_ranks_train_together_and_rank_zero_logs(tmp_path):
    mmar = make_mmar(tmp_path, [])
    port = str(free_port())
    procs = []
    for rank in (0, 1):
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
        env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", MASTER_PORT=port, OMPI_COMM_WORLD_RANK=str(rank),
                   OMPI_COMM_WORLD_SIZE="2", OMPI_COMM_WORLD_LOCAL_RANK=str(rank),
                   PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
        procs.append(subprocess.Popen([executable("tlt-train"), "-m", str(mmar), "--set", "multi_gpu=true",
                                       "epochs=1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    rank0, rank1 = (o + e for o, e in outs)
    assert "2 processes" in rank0 and "train epoch 1/1" in rank0 and "trained 1 epochs" in rank0
    assert "train epoch" not in rank1 and "trained" not in rank1  # rank 1 prints warnings only
    history = json.loads((mmar / "models" / "training_history.json").read_text())
    assert [h["epoch"] for h in history] == [1] and "val_mean_dice" in history[0]
