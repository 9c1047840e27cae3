"""Type stub of mflow._mflow, the compiled engine (python/src/lib.rs). Use the API in
mflow/__init__.py; these functions take checkpoints as bytes and arrays as the engine
wants them (float32 (N, D) or uint8 (N, C, H, W), C-contiguous)."""

from os import PathLike
from typing import Callable, List, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

_Path = Union[str, PathLike]

def fit(
    x: np.ndarray,
    options: str,
    out: Optional[_Path] = None,
    force: bool = False,
    hook: Optional[Callable[[int, int, List[Tuple[int, float]]], object]] = None,
    progress: bool = False,
) -> Tuple[str, bytes]:
    """Trains on x (settings as JSON); returns the summary (JSON) and the selected model."""

def score(
    model: bytes, x: np.ndarray, samples: int, seed: int
) -> Tuple[npt.NDArray[np.float64], Optional[npt.NDArray[np.float64]]]:
    """Per-point log p(x), and bits/dim per point for image models."""

def sample(model: bytes, n: int, temperature: float, seed: int) -> np.ndarray:
    """n samples in the data's units: float32 (n, D) or uint8 (n, C, H, W)."""

def plot_density(model: bytes, path: _Path, samples: int, resolution: int) -> None:
    """A 2-D model's log-density as a PNG heat map."""

def describe(model: bytes) -> str:
    """The checkpoint's configuration, run, standardisation and step, as JSON."""

def parameters(model: bytes) -> npt.NDArray[np.float32]:
    """Every parameter, in the checkpoint's order."""

def check_model(model: bytes) -> None:
    """Raises ValueError unless the bytes are a valid mflow checkpoint."""

def write_model(model: bytes, path: _Path) -> None:
    """Writes a checkpoint atomically."""

def read_model(path: _Path) -> bytes:
    """Reads and checks a checkpoint."""

def adapters() -> List[Tuple[str, str, str, str]]:
    """(name, backend, device type, driver) of every adapter."""

def adapter() -> str:
    """The adapter models run on."""
