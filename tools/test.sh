#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine too: builds, makes sure a Vulkan
# adapter exists (installing Mesa's lavapipe when none answers), runs every Rust test, then
# builds the Python package (python/) into a venv of its own and runs its pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."
# Silences a harmless message from Mesa's device-select Vulkan layer.
export NODEVICE_SELECT=1

# --workspace: the library is built once, with the features the Python package's build
# (pip install ./python, below) resolves too, so that build only adds the bindings.
cargo build --release --workspace --quiet
mflow="${CARGO_TARGET_DIR:-target}/release/mflow"
# A GL-only adapter (Mesa's llvmpipe through EGL) is not what the tests are meant for.
if ! "$mflow" info 2>/dev/null | tail -n 1 | grep -qE '\((Vulkan|Metal|Dx12),'; then
    echo "test.sh: no usable GPU adapter; installing Mesa's lavapipe (software Vulkan)"
    bash tools/install-lavapipe.sh
    "$mflow" info >/dev/null || { "$mflow" info; exit 1; }
fi
"$mflow" info | tail -n 1
# tools/mflow_np.py (numpy only) is checked against `mflow eval` by tests/tabular.rs.
if ! python3 -c 'import numpy' 2>/dev/null; then
    echo "test.sh: installing numpy for tools/mflow_np.py's test"
    python3 -m pip install -q numpy 2>/dev/null \
        || { SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo; $SUDO apt-get install -y -qq python3-numpy >/dev/null; }
    python3 -c 'import numpy' || { echo "test.sh: numpy could not be installed" >&2; exit 1; }
fi
cargo test --release --workspace "$@"

# The Python package: `pip install ./python` (maturin, from the package registry) into a
# venv under the target folder; the build reuses the library compiled above.
venv="${CARGO_TARGET_DIR:-target}/pyenv"
if ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
    rm -rf "$venv"
    if ! python3 -m venv "$venv" 2>/dev/null; then
        echo "test.sh: installing python3-venv for the Python package's tests"
        SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
        $SUDO apt-get install -y -qq python3-venv >/dev/null
        rm -rf "$venv"
        python3 -m venv "$venv"
    fi
fi
t0=$SECONDS
"$venv/bin/python" -m pip install -q ./python pytest
echo "test.sh: pip install ./python pytest took $((SECONDS - t0)) s"
MFLOW_BIN="$mflow" "$venv/bin/python" -m pytest -q python/tests
