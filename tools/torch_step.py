#!/usr/bin/env python3
"""The same model's training step in PyTorch eager mode, for `tools/bench-all.sh`'s ratio:
MODEL.md's marginalizing flow (ActNorm, affine couplings with s = tanh(r), reverse,
shuffle; L blocks, conditioner depth 2 of width H), Adam, one step = forward, loss
-log p_T(x, eps), backward, update. Prints one JSON line of samples/s per configuration.

    python3 tools/torch_step.py [--device cuda] [--steps 50]
"""
import argparse
import json
import math
import time

import torch


class Flow(torch.nn.Module):
    def __init__(self, q, blocks=4, depth=2, hidden=128, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.q, self.h = q, q // 2
        self.layers = torch.nn.ModuleList()
        self.kinds = []
        self.perms = []

        def actnorm():
            m = torch.nn.Module()
            m.beta = torch.nn.Parameter(torch.zeros(q))
            m.a = torch.nn.Parameter(torch.zeros(q))
            self.layers.append(m)
            self.kinds.append("actnorm")

        def coupling():
            dims = [self.h] + [hidden] * depth + [2 * (q - self.h)]
            mlp = []
            for k in range(len(dims) - 1):
                lin = torch.nn.Linear(dims[k], dims[k + 1])
                torch.nn.init.zeros_(lin.bias)
                if k + 1 < len(dims) - 1:
                    bound = math.sqrt(6 / dims[k])
                    torch.nn.init.uniform_(lin.weight, -bound, bound)
                    mlp += [lin, torch.nn.ReLU()]
                else:
                    torch.nn.init.zeros_(lin.weight)
                    mlp.append(lin)
            self.layers.append(torch.nn.Sequential(*mlp))
            self.kinds.append("coupling")

        actnorm()
        for b in range(blocks):
            coupling()
            self.kinds.append("reverse")
            self.layers.append(torch.nn.Identity())
            coupling()
            if b + 1 < blocks:
                self.kinds.append("shuffle")
                self.layers.append(torch.nn.Identity())
                self.perms.append(torch.randperm(q, generator=g))
                actnorm()

    def log_pt(self, y):
        logdet = torch.zeros(y.shape[0], device=y.device)
        shuffle = 0
        for kind, layer in zip(self.kinds, self.layers):
            if kind == "actnorm":
                scale = torch.exp(layer.a) + 1e-6
                y = (y - layer.beta) / scale
                logdet = logdet - torch.log(scale).sum()
            elif kind == "coupling":
                rm = layer(y[:, : self.h])
                nb = self.q - self.h
                s = torch.tanh(rm[:, :nb])
                y = torch.cat([y[:, : self.h], y[:, self.h:] * torch.exp(s) + rm[:, nb:]], dim=1)
                logdet = logdet + s.sum(dim=1)
            elif kind == "reverse":
                y = torch.flip(y, dims=[1])
            else:
                y = y[:, self.perms[shuffle].to(y.device)]
                shuffle += 1
        return (-0.5 * y ** 2 - 0.5 * math.log(2 * math.pi)).sum(dim=1) + logdet


def bench(label, d, b, hidden, batch, steps, device):
    q = d + b
    torch.manual_seed(0)
    flow = Flow(q, hidden=hidden).to(device)
    opt = torch.optim.Adam(flow.parameters(), lr=1e-4)
    x = torch.rand(batch, d, device=device) * 2 - 1

    def step():
        y = torch.cat([x, torch.randn(batch, b, device=device)], dim=1)
        loss = -flow.log_pt(y).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    times = []
    for _ in range(3):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(steps):
            step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t) / steps)
    sec = sorted(times)[1]
    print(json.dumps({"bench": "torch_train", "label": label, "d": d, "b": b, "q": q, "hidden": hidden,
                      "batch": batch, "device": device, "samples_per_s": batch / sec, "ms_per_step": sec * 1e3}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=50)
    a = p.parse_args()
    bench("gauss", 2, 0, 128, 256, a.steps, a.device)
    bench("moons", 2, 2, 128, 64, a.steps, a.device)
    bench("moons", 2, 2, 128, 256, a.steps, a.device)
    bench("mnist", 784, 4, 1024, 32, max(a.steps // 5, 2), a.device)


if __name__ == "__main__":
    main()
