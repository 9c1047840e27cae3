#!/usr/bin/env python3
"""mflow models in numpy alone: load a model.safetensors written by `mflow train`, compute
log p_T(x, eps), the S-sample marginal log-likelihood log p(x) (thesis eq. 8) and samples,
in the data's own units (a tabular model's standardisation is read from the file).

    import mflow_np
    m = mflow_np.load("runs/x/model.safetensors")
    ll = m.log_likelihood(x, samples=100, seed=0)   # (N,) nats, data units
    xs = m.sample(1000, seed=0)                      # (1000, D)

Command line:
    python3 tools/mflow_np.py eval --model M --data x.npy [--samples S] [--seed K] [--out ll.npy]
    python3 tools/mflow_np.py sample --model M --n 1000 [--temperature T] --out s.npy

The layers follow ../shared/spec/MODEL.md and docs/checkpoint.md (ActNorm, affine coupling
with s = tanh(r), reverse, shuffle). Image models' dequantisation is not reproduced here:
inputs are the flow's own x (or the data's units for standardised tabular models).
"""
import argparse
import json
import struct
import sys

import numpy as np

GAMMA = 1e-6
HALF_LOG_2PI = 0.5 * np.log(2 * np.pi)


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {}) or {}
    body = raw[8 + n:]
    dtypes = {"F32": np.float32, "U32": np.uint32, "F64": np.float64}
    tensors = {}
    for name, info in header.items():
        a, b = info["data_offsets"]
        tensors[name] = np.frombuffer(body[a:b], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
    return tensors, meta


class Model:
    def __init__(self, tensors, meta):
        if meta.get("format") != "mflow-flow-1":
            raise ValueError("not an mflow checkpoint (format %r)" % meta.get("format"))
        c = json.loads(meta["config"])
        self.d, self.b, self.blocks, self.depth = c["d"], c["b"], c["blocks"], c["depth"]
        self.q = self.d + self.b
        self.h = self.q // 2
        self.t = {k: v.astype(np.float64) if v.dtype != np.uint32 else v for k, v in tensors.items()}
        self.standardize = json.loads(meta["standardize"]) if "standardize" in meta else None
        # The layer list of MODEL.md: ActNorm, then L blocks of (coupling, reverse, coupling),
        # each but the last followed by (shuffle, actnorm).
        layers = [("actnorm", 0)]
        an, cp, sh = 1, 0, 0
        for block in range(self.blocks):
            layers += [("coupling", cp), ("reverse", None), ("coupling", cp + 1)]
            cp += 2
            if block + 1 < self.blocks:
                layers += [("shuffle", sh), ("actnorm", an)]
                sh += 1
                an += 1
        self.layers = layers

    # -- layers, data -> latent -------------------------------------------------------
    def _conditioner(self, i, ya):
        z = ya
        for k in range(self.depth + 1):
            z = z @ self.t["cp%d.W%d" % (i, k)] + self.t["cp%d.b%d" % (i, k)]
            if k < self.depth:
                z = np.maximum(z, 0.0)
        nb = self.q - self.h
        return np.tanh(np.clip(z[:, :nb], -15, 15)), z[:, nb:]

    def forward(self, y):
        """u = f(y) and log|det df/dy| per row, y of shape (N, Q)."""
        y = np.asarray(y, dtype=np.float64)
        logdet = np.zeros(len(y))
        for kind, i in self.layers:
            if kind == "actnorm":
                scale = np.exp(self.t["an%d.a" % i]) + GAMMA
                y = (y - self.t["an%d.beta" % i]) / scale
                logdet -= np.log(scale).sum()
            elif kind == "coupling":
                s, m = self._conditioner(i, y[:, :self.h])
                y = np.concatenate([y[:, :self.h], y[:, self.h:] * np.exp(s) + m], axis=1)
                logdet += s.sum(axis=1)
            elif kind == "reverse":
                y = y[:, ::-1]
            else:
                y = y[:, self.t["perm%d" % i].astype(np.int64)]
        return y, logdet

    def inverse(self, u):
        u = np.asarray(u, dtype=np.float64)
        for kind, i in reversed(self.layers):
            if kind == "actnorm":
                u = u * (np.exp(self.t["an%d.a" % i]) + GAMMA) + self.t["an%d.beta" % i]
            elif kind == "coupling":
                s, m = self._conditioner(i, u[:, :self.h])
                u = np.concatenate([u[:, :self.h], (u[:, self.h:] - m) * np.exp(-s)], axis=1)
            elif kind == "reverse":
                u = u[:, ::-1]
            else:
                inv = np.argsort(self.t["perm%d" % i].astype(np.int64))
                u = u[:, inv]
        return u

    def log_pt(self, y):
        """log p_T(y) for y = [x, eps] in the flow's input space, shape (N, Q)."""
        u, logdet = self.forward(y)
        return (-0.5 * u ** 2 - HALF_LOG_2PI).sum(axis=1) + logdet

    # -- the data's units ---------------------------------------------------------------
    def _to_model(self, x):
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.d:
            raise ValueError("x must be (N, %d), got %s" % (self.d, x.shape))
        if self.standardize is None:
            return x, 0.0
        mean, std = np.array(self.standardize["mean"]), np.array(self.standardize["std"])
        return (x - mean) / std, -np.log(std).sum()

    def log_likelihood(self, x, samples=100, seed=0):
        """log p(x) per row (nats, data units): exact for B = 0, else the S-sample importance
        estimate logsumexp_s [log p_T(x, eps_s) - log N(eps_s)] - log S."""
        z, jac = self._to_model(x)
        if self.b == 0:
            return self.log_pt(z) + jac
        rng = np.random.default_rng(seed)
        n = len(z)
        w = np.empty((samples, n))
        for s in range(samples):
            eps = rng.standard_normal((n, self.b))
            w[s] = self.log_pt(np.concatenate([z, eps], axis=1)) + (0.5 * eps ** 2 + HALF_LOG_2PI).sum(axis=1)
        top = w.max(axis=0)
        return top + np.log(np.exp(w - top).mean(axis=0)) + jac

    def sample(self, n, temperature=1.0, seed=0):
        """n samples of x in the data's units: u ~ N(0, T^2 I_Q), y = f^-1(u), first D."""
        rng = np.random.default_rng(seed)
        x = self.inverse(temperature * rng.standard_normal((n, self.q)))[:, :self.d]
        if self.standardize is not None:
            x = x * np.array(self.standardize["std"]) + np.array(self.standardize["mean"])
        return x


def load(path):
    return Model(*read_safetensors(path))


def _read_array(path):
    if path.endswith(".npy"):
        return np.load(path)
    return np.loadtxt(path, delimiter=",", skiprows=0 if _numeric_first_line(path) else 1, ndmin=2)


def _numeric_first_line(path):
    with open(path) as f:
        try:
            [float(c) for c in f.readline().split(",")]
            return True
        except ValueError:
            return False


def _write(path, a):
    if path.endswith(".npy"):
        np.save(path, a)
    else:
        np.savetxt(path, a, delimiter=",")


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("eval", help="log p(x) per row of an array")
    e.add_argument("--model", required=True)
    e.add_argument("--data", required=True, help=".npy or .csv, N x D, in the data's units")
    e.add_argument("--samples", type=int, default=100)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--out", help="per-point log p(x) to .npy or .csv")
    s = sub.add_parser("sample", help="samples in the data's units")
    s.add_argument("--model", required=True)
    s.add_argument("--n", type=int, default=1000)
    s.add_argument("--temperature", type=float, default=1.0)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True)
    a = p.parse_args(argv)
    m = load(a.model)
    if a.cmd == "eval":
        ll = m.log_likelihood(_read_array(a.data), a.samples, a.seed)
        se = ll.std(ddof=1) / np.sqrt(len(ll)) if len(ll) > 1 else float("nan")
        print(json.dumps({"points": len(ll), "samples": a.samples if m.b else 1, "exact": m.b == 0,
                          "seed": a.seed, "ll": float(ll.mean()), "ll_se": float(se), "units": "nats"}))
        if a.out:
            _write(a.out, ll)
    else:
        _write(a.out, m.sample(a.n, a.temperature, a.seed))


if __name__ == "__main__":
    main(sys.argv[1:])
