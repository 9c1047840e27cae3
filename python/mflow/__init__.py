"""mflow: marginalizing flows on the GPU, from Python.

A marginalizing flow is a Real NVP flow over ``[x, eps]`` whose ``B`` auxiliary
dimensions ``eps ~ N(0, I)`` are integrated out by importance sampling: ``log p(x)``
is a logsumexp over ``S`` draws of ``eps``. This package is the ``mflow`` command's
engine (the same WGSL kernels, training loop and checkpoints), with scikit-learn's
density-estimator conventions::

    import mflow
    m = mflow.MarginalizingFlow(aux=2, hidden=128, blocks=4, epochs=300, batch=256, lr=2e-3, seed=0)
    m.fit(X)                                # X: (N, D) floats, or (N, H, W) / (N, C, H, W) uint8 images
    m.score_samples(X, samples=100)         # (N,) log p(x) per point, float64, in X's units
    m.sample(1000)                          # (1000, D) in X's units
    m.save("model.safetensors")             # what `mflow eval --model` reads
    m2 = mflow.load("model.safetensors")    # and what `mflow train` writes

Errors: bad input raises ``ValueError`` with the command line's message; the GPU and
files raise ``RuntimeError``; Ctrl-C during ``fit`` stops after the current step
(writing the checkpoint when ``out`` was given) and raises ``KeyboardInterrupt``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import _mflow

__all__ = ["MarginalizingFlow", "NotFittedError", "load", "adapters", "adapter", "__version__"]
__version__ = _mflow.__version__


class NotFittedError(ValueError, AttributeError):
    """A model used before ``fit`` (scikit-learn's exception of the same name)."""


def adapters() -> List[Dict[str, str]]:
    """The GPU adapters ``mflow info`` lists: name, backend, device type and driver.

    ``MFLOW_ADAPTER`` (an index or part of a name) chooses among them, as ``--adapter``
    does on the command line; :func:`adapter` says which one models run on.
    """
    return [
        {"name": n, "backend": b, "device_type": t, "driver": d} for (n, b, t, d) in _mflow.adapters()
    ]


def adapter() -> str:
    """The adapter models run on, opening it if needed (as ``mflow train`` prints it)."""
    return _mflow.adapter()


def _points(X: Any, what: str = "X") -> np.ndarray:
    """X as the engine takes it: float32 (N, D), or (N, C, H, W) images: uint8 levels or
    float32 values."""
    X = np.asarray(X)
    if X.dtype.kind not in "iuf":
        raise ValueError(
            f"{what}: dtype {X.dtype} is not numeric; expected float32/float64 points (N, D) "
            "or uint8 images (N, H, W) / (N, C, H, W)"
        )
    if X.ndim < 2:
        raise ValueError(
            f"{what}: a {X.ndim}-D array of shape {X.shape}; expected (N, D) points or (N, H, W) / "
            "(N, C, H, W) images (one point: X.reshape(1, -1))"
        )
    if X.shape[0] == 0:
        raise ValueError(f"{what}: no rows")
    if X.ndim == 2:
        return np.ascontiguousarray(X, dtype=np.float32)
    if X.ndim > 4:
        raise ValueError(f"{what}: a {X.ndim}-D array; images are (N, H, W) or (N, C, H, W)")
    if X.dtype.kind == "f":
        # Float images are modelled as their values (mflow train --preprocess none).
        X = X.astype(np.float32, copy=False)
    elif X.dtype != np.uint8:
        raise ValueError(
            f"{what}: images must be uint8 levels 0..255 or floats (got dtype {X.dtype} of shape "
            f"{X.shape}); real-valued points are (N, D)"
        )
    if X.ndim == 3:
        X = X[:, None]
    return np.ascontiguousarray(X)


class _Progress:
    """tqdm when importable, else a line on stderr every tenth of the run."""

    def __init__(self, total_hint: Optional[int] = None):
        self.bar = None
        self.next_line = 0
        self.last_loss: Optional[float] = None
        try:
            from tqdm.auto import tqdm  # type: ignore

            self.tqdm = tqdm
        except ImportError:
            self.tqdm = None

    def update(self, step: int, total: int, loss: Optional[float]) -> None:
        if self.tqdm is not None:
            if self.bar is None:
                self.bar = self.tqdm(total=total, unit="step", desc="mflow fit", initial=step - 1)
            self.bar.update(step - self.bar.n)
            if loss is not None:
                self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            return
        if loss is not None:
            self.last_loss = loss
        if step >= self.next_line or step == total:
            tail = "" if self.last_loss is None else f", loss {self.last_loss:.4f}"
            print(f"mflow fit: step {step}/{total}{tail}", file=sys.stderr, flush=True)
            self.next_line = step + max(1, total // 10)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# The constructor's settings that are the command line's training flags, by name.
_RUN_SETTINGS = (
    "aux",
    "seed",
    "arch",
    "hidden",
    "blocks",
    "depth",
    "epochs",
    "batch",
    "lr",
    "clip",
    "samples",
    "log_every",
    "checkpoint_every",
    "validate_every",
    "validation_samples",
    "validation_points",
    "select",
    "patience",
    "lr_schedule",
    "warmup",
    "lr_min",
    "ema",
    "time_limit",
    "eval_points",
    "split_fractions",
    "standardize",
    "data_seed",
    "scales",
    "head_blocks",
    "head_hidden",
    "aux_channels",
    "permute",
)


class MarginalizingFlow:
    """A marginalizing flow density estimator (scikit-learn's ``fit`` / ``score_samples``).

    Every setting left at ``None`` takes ``mflow train``'s default for the data (MODEL.md):
    for your own arrays 10 epochs at batch 32, lr 5e-4, gradient clipping 0.6, 4 coupling
    blocks of width 128 (1024 for images). Names follow the command line's flags.

    Parameters
    ----------
    aux : int
        B, the auxiliary dimensions marginalised out (0: a plain Real NVP, exact).
    arch : {"dense", "conv"}
        ``"conv"``: CONV.md's convolutional multiscale flow, for images.
    hidden, blocks, depth : int
        Coupling network width, coupling blocks, hidden layers (conv: the conditioners'
        channels and depth; blocks come from ``scales``).
    epochs, batch, lr, clip : training schedule (clip 0: none).
    samples : int
        Importance samples S of the evaluation at the end of ``fit`` (``summary_``).
    seed : int
        Initialisation, shuffling and training noise.
    split_fractions : (train, validation, test)
        How ``fit`` splits X, shuffled by ``data_seed``, exactly as
        ``mflow train --data npy:X.npy`` does. The validation part selects the model
        (``select="best"``), the test part is evaluated once into ``summary_``.
    standardize : bool
        Fit on standardised columns (real-valued data); scores stay in X's units.
    validate_every, validation_samples, validation_points, select, patience : model selection.
    lr_schedule, warmup, lr_min : learning-rate schedule ("constant" or "cosine").
    ema : float
        Keep a moving average of the parameters with this decay (e.g. 0.999); validation,
        the final evaluation and the fitted model use it.
    time_limit : float
        Minutes of training after which ``fit`` stops (and evaluates).
    eval_points : int
        Evaluate at most this many points of each split at the end of ``fit``.
    scales, head_blocks, head_hidden, aux_channels, permute : ``arch="conv"`` only.
    verbose : bool
        A progress bar (tqdm when importable) during ``fit``.
    callback : callable(step, loss), optional
        Called with each loss read back (every ``log_every`` steps; a readback arrives a
        step or two after its step). Returning False stops ``fit`` after the step in
        progress, as Ctrl-C does: the checkpoint is written, then ``KeyboardInterrupt``.

    Attributes
    ----------
    summary_ : dict
        What ``mflow train`` writes to summary.json: held-out log-likelihood, speed...
    n_features_in_ : int
        D, the values per point.
    image_shape_ : tuple or None
        (C, H, W) for image models.
    """

    def __init__(
        self,
        aux: int = 2,
        *,
        arch: str = "dense",
        hidden: Optional[int] = None,
        blocks: Optional[int] = None,
        depth: Optional[int] = None,
        epochs: Optional[int] = None,
        batch: Optional[int] = None,
        lr: Optional[float] = None,
        clip: Optional[float] = None,
        samples: Optional[int] = None,
        seed: int = 0,
        log_every: Optional[int] = None,
        checkpoint_every: Optional[int] = None,
        validate_every: Optional[int] = None,
        validation_samples: Optional[int] = None,
        validation_points: Optional[int] = None,
        select: Optional[str] = None,
        patience: Optional[int] = None,
        lr_schedule: Optional[str] = None,
        warmup: Optional[int] = None,
        lr_min: Optional[float] = None,
        ema: Optional[float] = None,
        time_limit: Optional[float] = None,
        eval_points: Optional[int] = None,
        split_fractions: Optional[Sequence[float]] = None,
        standardize: bool = True,
        data_seed: Optional[int] = None,
        scales: Optional[int] = None,
        head_blocks: Optional[int] = None,
        head_hidden: Optional[int] = None,
        aux_channels: Optional[int] = None,
        permute: Optional[str] = None,
        verbose: bool = True,
        callback: Optional[Callable[[int, float], Any]] = None,
    ):
        self.aux = aux
        self.arch = arch
        self.hidden = hidden
        self.blocks = blocks
        self.depth = depth
        self.epochs = epochs
        self.batch = batch
        self.lr = lr
        self.clip = clip
        self.samples = samples
        self.seed = seed
        self.log_every = log_every
        self.checkpoint_every = checkpoint_every
        self.validate_every = validate_every
        self.validation_samples = validation_samples
        self.validation_points = validation_points
        self.select = select
        self.patience = patience
        self.lr_schedule = lr_schedule
        self.warmup = warmup
        self.lr_min = lr_min
        self.ema = ema
        self.time_limit = time_limit
        self.eval_points = eval_points
        self.split_fractions = split_fractions
        self.standardize = standardize
        self.data_seed = data_seed
        self.scales = scales
        self.head_blocks = head_blocks
        self.head_hidden = head_hidden
        self.aux_channels = aux_channels
        self.permute = permute
        self.verbose = verbose
        self.callback = callback
        self._model: Optional[bytes] = None

    # scikit-learn's estimator protocol (clone, grid search).
    def get_params(self, deep: bool = True) -> Dict[str, Any]:
        """The constructor's settings."""
        return {k: getattr(self, k) for k in _RUN_SETTINGS + ("verbose", "callback")}

    def set_params(self, **params: Any) -> "MarginalizingFlow":
        """Changes settings (a later ``fit`` uses them)."""
        for k, v in params.items():
            if k not in _RUN_SETTINGS + ("verbose", "callback"):
                raise ValueError(f"{k}: not a setting of MarginalizingFlow")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        defaults = MarginalizingFlow().get_params()
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if v != defaults[k]]
        return f"MarginalizingFlow({', '.join(changed)})"

    def _settings(self) -> str:
        s = {k: getattr(self, k) for k in _RUN_SETTINGS}
        if s["split_fractions"] is not None:
            s["split_fractions"] = [float(v) for v in s["split_fractions"]]
        return json.dumps({k: v for k, v in s.items() if v is not None})

    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        out: Optional[str] = None,
        force: bool = False,
        callback: Optional[Callable[[int, float], Any]] = None,
        verbose: Optional[bool] = None,
    ) -> "MarginalizingFlow":
        """Trains on X as ``mflow train --data npy:X.npy`` would, on the GPU.

        X is (N, D) real values (float32/float64, standardised per column unless
        ``standardize=False``), or (N, H, W) / (N, C, H, W) images: uint8 levels
        (dequantised as the command line does) or floats (modelled as their values, as
        ``mflow train --preprocess none`` does). It is split by ``split_fractions``. ``out`` is a run
        folder like ``mflow train --out``: checkpoints, metrics.jsonl, summary.json,
        samples.png; it must not hold another run unless ``force=True``. ``y`` is ignored.
        """
        x = _points(X)
        cb = self.callback if callback is None else callback
        show = self.verbose if verbose is None else verbose
        bar = _Progress() if show else None

        def hook(step: int, total: int, losses: List[Tuple[int, float]]) -> bool:
            if bar is not None:
                bar.update(step, total, losses[-1][1] if losses else None)
            if cb is not None:
                for logged, loss in losses:
                    if cb(logged, loss) is False:
                        return False
            return True

        try:
            summary, model = _mflow.fit(
                x, self._settings(), None if out is None else os.fspath(out), force, hook, False
            )
        finally:
            if bar is not None:
                bar.close()
        self._model = bytes(model)
        self.summary_ = json.loads(summary)
        self._set_shape()
        return self

    def _set_shape(self) -> None:
        info = json.loads(_mflow.describe(self._model))
        self.n_features_in_ = info["flow"]["d"]
        conv = info["flow"].get("conv")
        data = (info.get("run") or {}).get("data") or {}
        shape = data.get("Array", {}).get("shape") if isinstance(data, dict) else None
        if shape is not None and len(shape) == 3:
            self.image_shape_ = tuple(shape)
        elif conv is not None:
            self.image_shape_ = (conv["channels"], conv["height"], conv["width"])
        else:
            self.image_shape_ = None

    def _check_fitted(self) -> bytes:
        if self._model is None:
            raise NotFittedError(
                "This MarginalizingFlow is not fitted yet: call fit(X) first, or mflow.load(path)"
            )
        return self._model

    def score_samples(
        self, X: Any, samples: int = 100, seed: int = 0, bits_per_dim: bool = False
    ) -> np.ndarray:
        """log p(x) of every point, float64 (N,), in X's units: ``mflow eval --per-point``.

        ``samples`` is S, the importance samples of ε (unused when ``aux=0``: exact);
        ``seed`` the evaluation noise's. For image models log p is of the dequantised
        image in [0, 1]^D; ``bits_per_dim=True`` gives bits/dim in 256 levels instead.
        """
        model = self._check_fitted()
        x = _points(X)
        logp, bpd = _mflow.score(model, x, int(samples), int(seed))
        if bits_per_dim:
            if bpd is None:
                raise ValueError("bits_per_dim=True applies to image models (uint8 images)")
            return bpd
        return logp

    def score(self, X: Any, y: Any = None, samples: int = 100, seed: int = 0) -> float:
        """The mean log-likelihood of X (scikit-learn's ``score``)."""
        return float(np.mean(self.score_samples(X, samples=samples, seed=seed)))

    def sample(self, n: int = 1, temperature: float = 1.0, seed: Optional[int] = None) -> np.ndarray:
        """``n`` samples in X's units: (n, D) float32, or images (uint8, or float32 for a
        model of float images), (n, H, W) for one channel and (n, C, H, W) otherwise. ``seed=None`` draws a fresh seed."""
        model = self._check_fitted()
        if seed is None:
            seed = int.from_bytes(os.urandom(8), "little")
        out = _mflow.sample(model, int(n), float(temperature), int(seed))
        if out.ndim == 4 and out.shape[1] == 1:
            out = out[:, 0]
        return out

    def plot_density(self, path: str, samples: int = 16, resolution: int = 100) -> None:
        """A 2-D model's log-density as a PNG heat map (``mflow sample --density``)."""
        model = self._check_fitted()
        _mflow.plot_density(model, os.fspath(path), int(samples), int(resolution))

    def save(self, path: str) -> None:
        """Writes the model as the safetensors checkpoint ``mflow eval --model`` reads
        (atomically: a complete file or none)."""
        _mflow.write_model(self._check_fitted(), os.fspath(path))

    @property
    def parameters_(self) -> np.ndarray:
        """Every parameter, float32, in the checkpoint's order."""
        return _mflow.parameters(self._check_fitted())

    @property
    def config_(self) -> Dict[str, Any]:
        """The flow's and the run's configuration as the checkpoint records them."""
        return json.loads(_mflow.describe(self._check_fitted()))


def load(path: str) -> MarginalizingFlow:
    """A model from a checkpoint written by ``mflow train`` or :meth:`MarginalizingFlow.save`."""
    model = bytes(_mflow.read_model(os.fspath(path)))
    info = json.loads(_mflow.describe(model))
    flow = info["flow"]
    m = MarginalizingFlow(aux=flow["b"], seed=flow["seed"])
    run = info.get("run") or {}
    if flow.get("conv") is not None:
        m.arch = "conv"
    # The settings it was trained under, so that a refit trains the same configuration.
    if run:
        optim, sel, sched = run["optim"], run.get("selection") or {}, run.get("lr_schedule") or {}
        m.epochs, m.batch, m.lr, m.clip = run["epochs"], optim["batch"], optim["lr"], optim.get("clip") or 0.0
        m.samples, m.log_every, m.checkpoint_every = run["samples"], run["log_every"], run["checkpoint_every"]
        m.eval_points, m.time_limit, m.data_seed = run.get("eval_points"), run.get("time_limit"), run["data_seed"]
        m.validate_every, m.validation_samples = sel.get("validate_every"), sel.get("validation_samples")
        m.validation_points, m.ema = sel.get("validation_points"), optim.get("ema")
        m.select, m.patience = sel.get("select"), sel.get("patience")
        m.lr_schedule, m.warmup, m.lr_min = sched.get("kind"), sched.get("warmup"), sched.get("lr_min")
        array = run["data"].get("Array") if isinstance(run["data"], dict) else None
        if array is not None:
            m.split_fractions, m.standardize = tuple(array["fractions"]), array["standardize"]
    conv = flow.get("conv")
    if conv is None:
        m.hidden, m.blocks, m.depth = flow["hidden"], flow["blocks"], flow["depth"]
    else:
        m.hidden, m.depth, m.scales = conv["hidden"], conv["depth"], conv["scales"]
        m.aux_channels, m.permute = conv["aux_channels"], conv["permute"]
        m.head_blocks, m.head_hidden = flow["blocks"], flow["hidden"]
    m._model = model
    m._set_shape()
    return m
