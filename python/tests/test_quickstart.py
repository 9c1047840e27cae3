"""examples/quickstart.py runs end to end (with fewer epochs) and writes its picture."""

import subprocess
import sys

from conftest import ROOT


def test_quickstart(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py"), "2", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "held-out log-likelihood" in r.stdout
    png = (tmp_path / "density.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    assert (tmp_path / "model.safetensors").exists()
