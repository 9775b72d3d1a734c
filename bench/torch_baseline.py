"""PyTorch side of `dcnr bench`: the single-machine baseline.

Run by bench/torch.ts with /usr/bin/python3 (Debian python3-torch). Prints one JSON
object on stdout. Commands:
  info                                   torch version, threads, which BLAS is loaded
  matmul SIZE BUDGET_MS                  float32 SIZE^3 matmul, median GFLOP/s
  dense SIZE_B SIZE_IN SIZE_OUT BUDGET   dense forward+backward (x@W+b, dW, db, dx)
  train DATA.f32 LABELS.u8 N STEPS BATCH SEED [HIDDEN]
                                         an MLP 784-HIDDEN-10 (ReLU, Adam 1e-3, batch
                                         BATCH) on the same digits, samples/s; HIDDEN
                                         is comma-separated, default 128,64 (mnist-mlp;
                                         2048,2048 is wide-mlp)
"""
import json
import os
import statistics
import sys
import time

import torch


def blas_in_use():
    """The BLAS library actually mapped into this process (Debian picks it by alternatives)."""
    torch.ones(64, 64) @ torch.ones(64, 64)
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1]
            if "blas" in path or "openblas" in path or "mkl" in path:
                libs.add(path)
    return sorted(libs)


def timed(fn, budget_ms, min_runs=3, max_runs=50):
    fn()
    runs = []
    spent = 0.0
    while len(runs) < min_runs or (spent < budget_ms and len(runs) < max_runs):
        t = time.perf_counter()
        fn()
        ms = (time.perf_counter() - t) * 1000
        runs.append(ms)
        spent += ms
    return statistics.median(runs), len(runs)


def main(argv):
    # The same thread count our OpenBLAS backend uses (all cores), unless told otherwise.
    torch.set_num_threads(int(os.environ.get("DCNR_TORCH_THREADS", os.cpu_count() or 1)))
    torch.manual_seed(0)
    cmd = argv[0]
    if cmd == "info":
        print(json.dumps({"version": torch.__version__, "threads": torch.get_num_threads(), "blas": blas_in_use()}))
    elif cmd == "matmul":
        n, budget = int(argv[1]), float(argv[2])
        a, b = torch.rand(n, n), torch.rand(n, n)
        ms, runs = timed(lambda: a @ b, budget)
        print(json.dumps({"ms": ms, "runs": runs, "gflops": 2 * n ** 3 / (ms / 1000) / 1e9}))
    elif cmd == "dense":
        bs, fin, fout, budget = int(argv[1]), int(argv[2]), int(argv[3]), float(argv[4])
        x, w, bias = torch.rand(bs, fin), torch.rand(fin, fout), torch.rand(fout)
        dy = torch.rand(bs, fout)

        def step():
            y = torch.addmm(bias, x, w)
            dw = x.t() @ dy
            db = dy.sum(0)
            dx = dy @ w.t()
            return y, dw, db, dx

        ms, runs = timed(step, budget)
        print(json.dumps({"ms": ms, "runs": runs, "gflops": 3 * 2 * bs * fin * fout / (ms / 1000) / 1e9}))
    elif cmd == "train":
        data, labels, n, steps, batch, seed = argv[1], argv[2], int(argv[3]), int(argv[4]), int(argv[5]), int(argv[6])
        hidden = [int(h) for h in (argv[7] if len(argv) > 7 else "128,64").split(",")]
        import numpy as np

        x = torch.from_numpy(np.fromfile(data, dtype=np.float32).reshape(n, 784))
        y = torch.from_numpy(np.fromfile(labels, dtype=np.uint8).astype(np.int64))
        torch.manual_seed(seed)
        layers = []
        for fin, fout in zip([784] + hidden, hidden):
            layers += [torch.nn.Linear(fin, fout), torch.nn.ReLU()]
        model = torch.nn.Sequential(*layers, torch.nn.Linear(hidden[-1], 10))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = torch.nn.CrossEntropyLoss()
        g = torch.Generator().manual_seed(seed)
        order = torch.randperm(n, generator=g)
        t = time.perf_counter()
        loss = None
        for s in range(steps):
            idx = order[(s * batch) % (n - batch):][:batch]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
        ms = (time.perf_counter() - t) * 1000
        print(json.dumps({"sps": steps * batch / (ms / 1000), "ms": ms, "finalLoss": float(loss), "layers": [784] + hidden + [10]}))
    else:
        raise SystemExit(f"unknown command {cmd!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
