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
  gpt X.f32 T.f32 EVALX.f32 EVALT.f32 STEPS BATCH CONTEXT VOCAB SEED
                                         names-gpt's architecture (runtime/model.ts) on the
                                         same batches DCNR trained on (token ids as float32,
                                         STEPS×BATCH×CONTEXT), Adam 1e-3; eval loss on the
                                         held-out windows and samples/s
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


class Block(torch.nn.Module):
    """names-gpt's block: pre-LayerNorm, causal multi-head attention, a 4x GELU MLP, both residual."""

    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.ln1 = torch.nn.LayerNorm(width, eps=1e-5)
        self.qkv = torch.nn.Linear(width, 3 * width)
        self.proj = torch.nn.Linear(width, width)
        self.ln2 = torch.nn.LayerNorm(width, eps=1e-5)
        self.fc = torch.nn.Linear(width, 4 * width)
        self.out = torch.nn.Linear(4 * width, width)
        # DCNR's init schemes: attention projections normal(0, 1/C), dense xavier-normal, biases 0.
        for lin in (self.qkv, self.proj):
            torch.nn.init.normal_(lin.weight, 0.0, (1.0 / width) ** 0.5)
            torch.nn.init.zeros_(lin.bias)
        for lin in (self.fc, self.out):
            torch.nn.init.normal_(lin.weight, 0.0, (2.0 / (lin.in_features + lin.out_features)) ** 0.5)
            torch.nn.init.zeros_(lin.bias)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        # Written out (Debian's torch predates scaled_dot_product_attention): softmax(q·kᵀ/√d, causal) · v.
        att = (q @ k.transpose(-2, -1)) * (1.0 / (c // self.heads) ** 0.5)
        att = att.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
        a = torch.softmax(att, dim=-1) @ v
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, c))
        return x + self.out(torch.nn.functional.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class Gpt(torch.nn.Module):
    def __init__(self, vocab, context, width=64, heads=4, blocks=2):
        super().__init__()
        self.tok = torch.nn.Parameter(torch.randn(vocab, width) * 0.02)
        self.pos = torch.nn.Parameter(torch.randn(context, width) * 0.02)
        self.blocks = torch.nn.Sequential(*[Block(width, heads) for _ in range(blocks)])
        self.ln = torch.nn.LayerNorm(width, eps=1e-5)
        self.head = torch.nn.Linear(width, vocab)
        torch.nn.init.normal_(self.head.weight, 0.0, (2.0 / (width + vocab)) ** 0.5)
        torch.nn.init.zeros_(self.head.bias)

    def forward(self, ids):
        t = ids.shape[1]
        return self.head(self.ln(self.blocks(self.tok[ids] + self.pos[:t])))


def gpt(argv):
    import numpy as np

    xf, tf, exf, etf = argv[0:4]
    steps, batch, context, vocab, seed = (int(a) for a in argv[4:9])
    load = lambda f: torch.from_numpy(np.fromfile(f, dtype=np.float32).astype(np.int64)).view(-1, context)
    x, t, ex, et = load(xf), load(tf), load(exf), load(etf)
    torch.manual_seed(seed)
    model = Gpt(vocab, context)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    loss_fn = torch.nn.CrossEntropyLoss()
    start = time.perf_counter()
    loss = None
    for s in range(steps):
        xb, tb = x[s * batch:(s + 1) * batch], t[s * batch:(s + 1) * batch]
        opt.zero_grad()
        loss = loss_fn(model(xb).reshape(-1, vocab), tb.reshape(-1))
        loss.backward()
        opt.step()
    ms = (time.perf_counter() - start) * 1000
    with torch.no_grad():
        eval_loss = float(loss_fn(model(ex).reshape(-1, vocab), et.reshape(-1)))
    params = sum(p.numel() for p in model.parameters())
    print(json.dumps({"sps": steps * batch / (ms / 1000), "ms": ms, "finalLoss": float(loss), "evalLoss": eval_loss, "params": params}))


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
    elif cmd == "gpt":
        gpt(argv[1:])
    elif cmd == "infer":
        # Serving's baseline: mnist-mlp's forward in this process (no HTTP, no network),
        # p50 latency of one row and rows/s at a batch of `batch`.
        runs, batch = int(argv[1]), int(argv[2])
        hidden = [int(h) for h in (argv[3] if len(argv) > 3 else "128,64").split(",")]
        layers = []
        for fin, fout in zip([784] + hidden, hidden):
            layers += [torch.nn.Linear(fin, fout), torch.nn.ReLU()]
        model = torch.nn.Sequential(*layers, torch.nn.Linear(hidden[-1], 10), torch.nn.Softmax(dim=1)).eval()
        one, many = torch.rand(1, 784), torch.rand(batch, 784)
        with torch.no_grad():
            for _ in range(20):
                model(one)
            lat = []
            for _ in range(runs):
                t = time.perf_counter()
                model(one)
                lat.append((time.perf_counter() - t) * 1000)
            lat.sort()
            t = time.perf_counter()
            for _ in range(runs):
                model(many)
            rows_per_sec = runs * batch / (time.perf_counter() - t)
        print(json.dumps({"p50Ms": lat[len(lat) // 2], "p99Ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))], "rowsPerSec": rows_per_sec, "batch": batch}))
    else:
        raise SystemExit(f"unknown command {cmd!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
