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
with s = tanh(r), reverse, shuffle), and for conv models ../shared/spec/CONV.md (per-channel
ActNorm, checkerboard and channel couplings with convolutional conditioners, squeeze,
channel reversal, factor-out, then the dense head). Image models' dequantisation is not
reproduced here: inputs are the flow's own x, flattened in (c, i, j) order (or the data's
units for standardised tabular models).
"""
import argparse
import json
import os
import stat
import struct
import sys
import warnings

import numpy as np

GAMMA = 1e-6
HALF_LOG_2PI = 0.5 * np.log(2 * np.pi)
# Bounds checked before anything is allocated (the CLI's own: docs/checkpoint.md).
MAX_HEADER = 100 << 20
MAX_DIM = 1 << 16
MAX_ROWS = 1 << 26
MAX_CELLS = 1 << 28  # values of one work array (samples x rows, rows x Q)


class Refused(ValueError):
    """A file or argument mflow_np will not use; the message names it and the bound."""


def _regular(path):
    try:
        st = os.stat(path)
    except OSError as e:
        raise Refused("%s: %s" % (path, e.strerror or e))
    if not stat.S_ISREG(st.st_mode):
        raise Refused("%s: not a regular file" % path)
    return st.st_size


def read_safetensors(path):
    size = _regular(path)
    if size < 8:
        raise Refused("%s: %d bytes, too short for a safetensors file" % (path, size))
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        if n > min(MAX_HEADER, size - 8):
            raise Refused("%s: header of %d bytes in a %d-byte file (damaged or not safetensors)" % (path, n, size))
        try:
            header = json.loads(f.read(n))
        except (ValueError, UnicodeDecodeError) as e:
            raise Refused("%s: unreadable header (%s)" % (path, e))
        body = f.read()
    if not isinstance(header, dict):
        raise Refused("%s: the header is not a JSON object" % path)
    meta = header.pop("__metadata__", {}) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise Refused("%s: __metadata__ must map names to strings" % path)
    dtypes = {"F32": np.float32, "U32": np.uint32, "F64": np.float64}
    tensors = {}
    for name, info in header.items():
        try:
            dtype = np.dtype(dtypes[info["dtype"]])
            shape = [int(x) for x in info["shape"]]
            a, b = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise Refused("%s: tensor %r: needs dtype F32/U32/F64, shape and data_offsets" % (path, name))
        count = int(np.prod(shape, dtype=object)) if shape else 1
        if any(x < 0 for x in shape) or not 0 <= a <= b <= len(body) or b - a != count * dtype.itemsize:
            raise Refused("%s: tensor %r: shape %s and offsets [%d, %d] do not fit the %d-byte body"
                          % (path, name, shape, a, b, len(body)))
        tensors[name] = np.frombuffer(body[a:b], dtype=dtype).reshape(shape)
    return tensors, meta


def _config(path, meta):
    try:
        c = json.loads(meta["config"])
        d, b, blocks, depth, hidden = (int(c[k]) for k in ("d", "b", "blocks", "depth", "hidden"))
        conv = c.get("conv")
        if conv is not None:
            conv = {k: conv[k] for k in ("channels", "height", "width", "aux_channels", "scales", "hidden", "depth",
                                         "permute")}
            for k, v in conv.items():
                if k != "permute" and not (isinstance(v, int) and 0 <= v <= MAX_DIM):
                    raise ValueError(k)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise Refused("%s: metadata 'config' must hold d, b, blocks, depth and hidden (and a conv model's "
                      "channels, height, width, aux_channels, scales, hidden, depth, permute)" % path)
    return d, b, blocks, depth, hidden, conv


def _dense_config(path, d, b, blocks, depth, hidden):
    if not (1 <= d and 0 <= b and 2 <= d + b <= MAX_DIM and 1 <= blocks <= 1024 and 0 <= depth <= 64
            and 1 <= hidden <= MAX_DIM):
        raise Refused("%s: config d=%d b=%d blocks=%d depth=%d hidden=%d is out of bounds (1 <= d, "
                      "2 <= d + b <= %d, 1 <= blocks <= 1024, depth <= 64, 1 <= hidden <= %d)"
                      % (path, d, b, blocks, depth, hidden, MAX_DIM, MAX_DIM))


class Model:
    def __init__(self, tensors, meta, path="the model"):
        if meta.get("format") != "mflow-flow-1":
            raise Refused("%s: not an mflow checkpoint (format %r)" % (path, meta.get("format")))
        self.d, flat_b, self.blocks, self.depth, self.hidden, self.conv = _config(path, meta)
        self.conv_layers = []
        if self.conv is None:
            _dense_config(path, self.d, flat_b, self.blocks, self.depth, self.hidden)
            self.b = flat_b
            self.head_off, self.prefix = 0, ""
        else:
            self._conv_layers(path, flat_b)
            self.prefix = "head."
        # b: every auxiliary value of a row ([x, eps channels, flat eps]); the dense layers act
        # on the row's last `qh` columns (the whole row of a dense model).
        self.q = self.d + self.b
        self.qh = self.q - self.head_off
        self.h = self.qh // 2
        self.t = {k: v.astype(np.float64) if v.dtype != np.uint32 else v for k, v in tensors.items()}
        self.standardize = None
        if "standardize" in meta:
            try:
                st = json.loads(meta["standardize"])
                mean, std = np.array(st["mean"], dtype=np.float64), np.array(st["std"], dtype=np.float64)
            except (KeyError, TypeError, ValueError):
                raise Refused("%s: unreadable standardisation" % path)
            if mean.shape != (self.d,) or std.shape != (self.d,) or not (np.isfinite(mean).all()
                                                                         and np.isfinite(std).all() and (std > 0).all()):
                raise Refused("%s: the standardisation does not fit the model (D = %d)" % (path, self.d))
            self.standardize = {"mean": mean, "std": std}
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
        self._check_tensors(path)

    def _conv_layers(self, path, flat_b):
        """CONV.md's layer list, as mflow builds it (src/model/conv.rs): regions (off, c, h, w)
        of the row, in (c, i, j) order."""
        cv = self.conv
        c0, hh, ww = cv["channels"] + cv["aux_channels"], cv["height"], cv["width"]
        if cv["permute"] not in ("reverse", "conv1x1"):
            raise Refused("%s: unknown channel permutation %r" % (path, cv["permute"]))
        if (cv["channels"] * hh * ww != self.d or not 1 <= cv["scales"] <= 6 or c0 * hh * ww > MAX_DIM
                or not 1 <= cv["hidden"] <= MAX_DIM or not 1 <= cv["depth"] <= 64):
            raise Refused("%s: conv config %s does not fit D = %d (or is out of bounds)" % (path, cv, self.d))
        r = (0, c0, hh, ww)
        layers, an, cp, inv = [], 0, 0, 0
        for s in range(1, cv["scales"] + 1):
            last = s == cv["scales"]
            for k in range(4 if last else 3):
                layers += [("cnorm", an, r), ("checker", cp, k % 2, r)]
                an, cp = an + 1, cp + 1
            if last:
                break
            off, c, h, w = r
            if h % 2 or w % 2:
                raise Refused("%s: scale %d squeezes a %dx%d image" % (path, s, h, w))
            layers.append(("squeeze", r))
            r = (off, 4 * c, h // 2, w // 2)
            for k in range(3):
                layers += [("cnorm", an, r), ("channel", cp, r)]
                an, cp = an + 1, cp + 1
                if k < 2 and cv["permute"] == "conv1x1":
                    layers.append(("conv1x1", inv, r))
                    inv += 1
                elif k < 2:
                    layers.append(("creverse", r))
            layers.append(("factor", r))
            off, c, h, w = r
            r = (off + c // 2 * h * w, c - c // 2, h, w)
        self.conv_layers = layers
        self.b = cv["aux_channels"] * hh * ww + flat_b
        self.head_off = r[0]
        _dense_config(path, r[1] * r[2] * r[3], flat_b, self.blocks, self.depth, self.hidden)

    def _check_tensors(self, path):
        """Every tensor the layers use is there, shaped as docs/checkpoint.md says, finite."""
        q, h, pre = self.qh, self.h, self.prefix
        need = {}
        for kind, i in self.layers:
            if kind == "actnorm":
                need[pre + "an%d.beta" % i] = (q,)
                need[pre + "an%d.a" % i] = (q,)
            elif kind == "coupling":
                fan_in = h
                for k in range(self.depth + 1):
                    fan_out = 2 * (q - h) if k == self.depth else self.hidden
                    need[pre + "cp%d.W%d" % (i, k)] = (fan_in, fan_out)
                    need[pre + "cp%d.b%d" % (i, k)] = (fan_out,)
                    fan_in = fan_out
            elif kind == "shuffle":
                need["perm%d" % i] = (q,)
        for layer in self.conv_layers:
            kind, i, r = layer[0], layer[1], layer[-1]
            c = r[1]
            if kind == "cnorm":
                need["an%d.beta" % i] = (c,)
                need["an%d.a" % i] = (c,)
            elif kind == "conv1x1":
                need["inv%d.lu" % i] = (c, c)
                need["inv%d.perm" % i] = (c,)
                need["inv%d.sign" % i] = (c,)
            elif kind in ("checker", "channel"):
                c_in, c_out = (c, 2 * c) if kind == "checker" else (c // 2, 2 * (c - c // 2))
                cv = self.conv
                shapes = [(cv["hidden"], c_in, 3)] + [(cv["hidden"], cv["hidden"], 1)] * (cv["depth"] - 1) + [
                    (c_out, cv["hidden"], 3)]
                for k, (co, ci, ks) in enumerate(shapes):
                    need["cp%d.conv%d.weight" % (i, k)] = (co, ci, ks, ks)
                    need["cp%d.conv%d.bias" % (i, k)] = (co,)
                    if k + 1 < len(shapes):
                        need["cp%d.an%d.beta" % (i, k)] = (co,)
                        need["cp%d.an%d.a" % (i, k)] = (co,)
        for name, shape in need.items():
            t = self.t.get(name)
            if t is None or tuple(t.shape) != tuple(shape) or min(shape) < 1:
                raise Refused("%s: tensor %s is %s, the model needs %s" % (path, name, None if t is None else tuple(t.shape), shape))
            if name.startswith("perm") or name.endswith(".perm"):
                if t.dtype != np.uint32 or sorted(t.tolist()) != list(range(shape[0])):
                    raise Refused("%s: %s is not a permutation of 0..%d" % (path, name, shape[0] - 1))
            elif name.endswith(".sign") and not np.isin(t, (-1.0, 1.0)).all():
                raise Refused("%s: %s must hold +1 or -1" % (path, name))
            elif not np.isfinite(t).all():
                raise Refused("%s: tensor %s holds non-finite values (a diverged model?)" % (path, name))

    # -- layers, data -> latent -------------------------------------------------------
    def _conditioner(self, i, ya):
        z = ya
        for k in range(self.depth + 1):
            z = z @ self.t[self.prefix + "cp%d.W%d" % (i, k)] + self.t[self.prefix + "cp%d.b%d" % (i, k)]
            if k < self.depth:
                z = np.maximum(z, 0.0)
        nb = self.qh - self.h
        return np.tanh(np.clip(z[:, :nb], -15, 15)), z[:, nb:]

    # -- conv layers (CONV.md) ----------------------------------------------------------
    def _conv2d(self, x, name):
        w, b = self.t[name + ".weight"], self.t[name + ".bias"]
        k = w.shape[2]
        p = k // 2
        h, wd = x.shape[2], x.shape[3]
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        out = np.zeros((x.shape[0], w.shape[0], h, wd)) + b[None, :, None, None]
        for di in range(k):
            for dj in range(k):
                out += np.einsum("nchw,oc->nohw", xp[:, :, di:di + h, dj:dj + wd], w[:, :, di, dj])
        return out

    def _cnorm(self, x, name):
        beta, scale = self.t[name + ".beta"], np.exp(self.t[name + ".a"]) + GAMMA
        return (x - beta[None, :, None, None]) / scale[None, :, None, None], scale

    def _coupling_net(self, i, x):
        """The conditioner's (s, m): conv -> ActNorm -> ReLU, ..., conv."""
        z, depth = x, self.conv["depth"]
        for k in range(depth + 1):
            z = self._conv2d(z, "cp%d.conv%d" % (i, k))
            if k < depth:
                z = np.maximum(self._cnorm(z, "cp%d.an%d" % (i, k))[0], 0.0)
        half = z.shape[1] // 2
        return np.tanh(np.clip(z[:, :half], -15, 15)), z[:, half:]

    def _inv1x1(self, i, c):
        """W = P L (U + diag(sign * exp(log_s))) from the packed tensor inv{i}.lu; W's row i is
        (L U')'s row perm[i]."""
        lu = self.t["inv%d.lu" % i]
        lower = np.tril(lu, -1) + np.eye(c)
        upper = np.triu(lu, 1) + np.diag(self.t["inv%d.sign" % i] * np.exp(np.diag(lu)))
        return (lower @ upper)[self.t["inv%d.perm" % i].astype(np.int64)]

    @staticmethod
    def _region(y, r):
        off, c, h, w = r
        return y[:, off:off + c * h * w].reshape(len(y), c, h, w)

    def _conv_step(self, layer, y, forward):
        """One conv layer either way on rows y (N, Q); returns (rows, log-det per row)."""
        kind, r = layer[0], layer[-1]
        off, c, h, w = r
        x = self._region(y, r)
        ld = np.zeros(len(y))
        if kind == "cnorm":
            name = "an%d" % layer[1]
            if forward:
                x, scale = self._cnorm(x, name)
                ld -= h * w * np.log(scale).sum()
            else:
                scale = np.exp(self.t[name + ".a"]) + GAMMA
                x = x * scale[None, :, None, None] + self.t[name + ".beta"][None, :, None, None]
        elif kind == "checker":
            i, parity = layer[1], layer[2]
            ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
            b = ((ii + jj) % 2 == parity).astype(np.float64)[None, None]
            s, m = self._coupling_net(i, x * b)
            if forward:
                x = b * x + (1 - b) * (x * np.exp(s) + m)
                ld += ((1 - b) * s).sum(axis=(1, 2, 3))
            else:
                x = b * x + (1 - b) * (x - m) * np.exp(-s)
        elif kind == "channel":
            ca = c // 2
            s, m = self._coupling_net(layer[1], x[:, :ca])
            xb = x[:, ca:] * np.exp(s) + m if forward else (x[:, ca:] - m) * np.exp(-s)
            x = np.concatenate([x[:, :ca], xb], axis=1)
            if forward:
                ld += s.sum(axis=(1, 2, 3))
        elif kind == "creverse":
            x = x[:, ::-1]
        elif kind == "conv1x1":
            lu = self.t["inv%d.lu" % layer[1]]
            mix = self._inv1x1(layer[1], c)
            x = np.einsum("ok,nkhw->nohw", mix if forward else np.linalg.inv(mix), x)
            if forward:
                ld += h * w * np.diag(lu).sum()
        elif kind == "squeeze":
            if forward:  # out[(2 di + dj) C + c, i, j] = in[c, 2i + di, 2j + dj]
                x = x.reshape(len(y), c, h // 2, 2, w // 2, 2).transpose(0, 3, 5, 1, 2, 4).reshape(len(y), 4 * c, h // 2, w // 2)
            else:
                x = self._region(y, (off, 4 * c, h // 2, w // 2))
                x = x.reshape(len(y), 2, 2, c, h // 2, w // 2).transpose(0, 3, 4, 1, 5, 2).reshape(len(y), c, h, w)
        # factor: nothing moves
        y = y.copy()
        y[:, off:off + c * h * w] = x.reshape(len(y), -1)
        return y, ld

    def forward(self, y):
        """u = f(y) and log|det df/dy| per row, y of shape (N, Q): the conv layers (if any) on
        their regions, then the dense layers on the row's last qh columns."""
        y = np.asarray(y, dtype=np.float64)
        logdet = np.zeros(len(y))
        for layer in self.conv_layers:
            y, ld = self._conv_step(layer, y, True)
            logdet += ld
        tail, ld = self._dense_forward(y[:, self.head_off:])
        return np.concatenate([y[:, :self.head_off], tail], axis=1), logdet + ld

    def _dense_forward(self, y):
        t, pre = self.t, self.prefix
        logdet = np.zeros(len(y))
        for kind, i in self.layers:
            if kind == "actnorm":
                scale = np.exp(t[pre + "an%d.a" % i]) + GAMMA
                y = (y - t[pre + "an%d.beta" % i]) / scale
                logdet -= np.log(scale).sum()
            elif kind == "coupling":
                s, m = self._conditioner(i, y[:, :self.h])
                y = np.concatenate([y[:, :self.h], y[:, self.h:] * np.exp(s) + m], axis=1)
                logdet += s.sum(axis=1)
            elif kind == "reverse":
                y = y[:, ::-1]
            else:
                y = y[:, t["perm%d" % i].astype(np.int64)]
        return y, logdet

    def inverse(self, u):
        u = np.asarray(u, dtype=np.float64)
        t, pre = self.t, self.prefix
        y = u[:, self.head_off:]
        for kind, i in reversed(self.layers):
            if kind == "actnorm":
                y = y * (np.exp(t[pre + "an%d.a" % i]) + GAMMA) + t[pre + "an%d.beta" % i]
            elif kind == "coupling":
                s, m = self._conditioner(i, y[:, :self.h])
                y = np.concatenate([y[:, :self.h], (y[:, self.h:] - m) * np.exp(-s)], axis=1)
            elif kind == "reverse":
                y = y[:, ::-1]
            else:
                y = y[:, np.argsort(t["perm%d" % i].astype(np.int64))]
        u = np.concatenate([u[:, :self.head_off], y], axis=1)
        for layer in reversed(self.conv_layers):
            u, _ = self._conv_step(layer, u, False)
        return u

    def log_pt(self, y):
        """log p_T(y) for y = [x, eps] in the flow's input space, shape (N, Q)."""
        u, logdet = self.forward(y)
        return (-0.5 * u ** 2 - HALF_LOG_2PI).sum(axis=1) + logdet

    # -- the data's units ---------------------------------------------------------------
    def _to_model(self, x, what="x"):
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.d or len(x) == 0:
            raise Refused("%s: must be (N, %d) with N >= 1, got %s" % (what, self.d, x.shape))
        if not np.isfinite(x).all():
            bad = np.argwhere(~np.isfinite(x))[0]
            raise Refused("%s: row %d, column %d is %s" % (what, bad[0], bad[1], x[bad[0], bad[1]]))
        big = np.abs(x) > np.finfo(np.float32).max
        if big.any():
            bad = np.argwhere(big)[0]
            raise Refused("%s: row %d, column %d is %g, beyond float32's range in which mflow computes"
                          % (what, bad[0], bad[1], x[bad[0], bad[1]]))
        if self.standardize is None:
            return x, 0.0
        mean, std = np.array(self.standardize["mean"]), np.array(self.standardize["std"])
        return (x - mean) / std, -np.log(std).sum()

    def log_likelihood(self, x, samples=100, seed=0, what="x"):
        """log p(x) per row (nats, data units): exact for B = 0, else the S-sample importance
        estimate logsumexp_s [log p_T(x, eps_s) - log N(eps_s)] - log S."""
        z, jac = self._to_model(x, what)
        if not 1 <= samples or samples * len(z) > MAX_CELLS:
            raise Refused("--samples %d: between 1 and %d for %d points" % (samples, MAX_CELLS // len(z), len(z)))
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
        if not 1 <= n <= MAX_CELLS // self.q:
            raise Refused("--n %d: between 1 and %d samples of this model" % (n, MAX_CELLS // self.q))
        if not (np.isfinite(temperature) and temperature > 0):
            raise Refused("--temperature %s: must be a positive finite number" % temperature)
        rng = np.random.default_rng(seed)
        x = self.inverse(temperature * rng.standard_normal((n, self.q)))[:, :self.d]
        if self.standardize is not None:
            x = x * np.array(self.standardize["std"]) + np.array(self.standardize["mean"])
        return x


def load(path):
    return Model(*read_safetensors(path), path=path)


def _read_npy(path, size):
    """An N x D float array, its header checked against the file's size before reading."""
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise Refused("%s: NPY version %d.%d (mflow reads 1, 2 and 3)" % (path, *version))
        except Refused:
            raise
        except Exception as e:
            raise Refused("%s: not a readable NPY file (%s)" % (path, e))
        if dtype.kind != "f" or dtype.hasobject:
            raise Refused("%s: dtype %s; mflow reads float32 or float64 arrays" % (path, dtype))
        if len(shape) != 2:
            raise Refused("%s: shape %s; mflow reads N x D arrays" % (path, shape))
        count = int(np.prod(shape, dtype=object))
        if shape[0] > MAX_ROWS or shape[1] > MAX_DIM or count * dtype.itemsize != size - f.tell():
            raise Refused("%s: the header says %s %s (%d bytes) but the file holds %d bytes after it "
                          "(at most %d rows of %d columns)" % (path, shape, dtype, count * dtype.itemsize,
                                                               size - f.tell(), MAX_ROWS, MAX_DIM))
        a = np.fromfile(f, dtype=dtype, count=count).reshape(shape, order="F" if fortran else "C")
    return a


def _read_array(path):
    size = _regular(path)
    if path.lower().endswith(".npy"):
        return _read_npy(path, size)
    if not path.lower().endswith(".csv"):
        raise Refused("%s: the extension says the format: .npy or .csv" % path)
    try:
        with open(path, encoding="utf-8-sig") as f:
            first = f.readline()
        try:
            [float(c) for c in first.split(",")]
            skip = 0
        except ValueError:
            skip = 1
        a = np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2, encoding="utf-8-sig")
    except (ValueError, UnicodeDecodeError) as e:
        raise Refused("%s: %s" % (path, e))
    if a.size == 0:
        raise Refused("%s: no data rows" % path)
    return a


def _check_out(out, inputs):
    """An output is never a file the command reads (compared by identity) and says its format."""
    if not out.lower().endswith((".npy", ".csv")):
        raise Refused("--out %s: the extension says the format: .npy or .csv" % out)
    for what, path in inputs:
        try:
            same = os.path.samefile(out, path)
        except OSError:
            same = False
        if same:
            raise Refused("--out %s: is %s (%s), which this command reads; choose another file" % (out, what, path))


def _write(path, a):
    tmp = "%s.%d.tmp" % (path, os.getpid())
    try:
        if path.lower().endswith(".npy"):
            with open(tmp, "wb") as f:
                np.save(f, a)
        else:
            np.savetxt(tmp, a, delimiter=",")
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise Refused("--out %s: %s" % (path, e.strerror or e))


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
    try:
        # Overflow in hostile inputs is caught as a non-finite result and refused, naming the
        # file; numpy's warnings would only repeat it without the name.
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run(a)
    except Refused as e:
        print("error: %s" % e, file=sys.stderr)
        sys.exit(1)
    except MemoryError:
        print("error: out of memory (lower --samples, --n or the data's size)", file=sys.stderr)
        sys.exit(1)


def run(a):
    inputs = [("--model", a.model)] + ([("--data", a.data)] if a.cmd == "eval" else [])
    if a.out:
        _check_out(a.out, inputs)
    m = load(a.model)
    if a.cmd == "eval":
        ll = m.log_likelihood(_read_array(a.data), a.samples, a.seed, what=a.data)
        if not np.isfinite(ll).all():
            bad = np.flatnonzero(~np.isfinite(ll))
            raise Refused("%s: log p(x) is not finite for %d of %d points (first: row %d); the model may have "
                          "diverged" % (a.model, len(bad), len(ll), bad[0]))
        scale = max(1.0, float(np.abs(ll).max()))  # std of huge values without overflow
        se = (ll / scale).std(ddof=1) * scale / np.sqrt(len(ll)) if len(ll) > 1 else None
        print(json.dumps({"points": len(ll), "samples": a.samples if m.b else 1, "exact": m.b == 0,
                          "seed": a.seed, "ll": float(ll.mean()), "ll_se": se, "units": "nats"}))
        if a.out:
            _write(a.out, ll)
    else:
        x = m.sample(a.n, a.temperature, a.seed)
        if not np.isfinite(x).all():
            raise Refused("%s: the samples are not finite; the model may have diverged" % a.model)
        _write(a.out, x)


if __name__ == "__main__":
    main(sys.argv[1:])
