#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine too: builds, makes sure a Vulkan
# adapter exists (installing Mesa's lavapipe when none answers), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
# Silences a harmless message from Mesa's device-select Vulkan layer.
export NODEVICE_SELECT=1

cargo build --release --quiet
mflow="${CARGO_TARGET_DIR:-target}/release/mflow"
# A GL-only adapter (Mesa's llvmpipe through EGL) is not what the tests are meant for.
if ! "$mflow" info 2>/dev/null | tail -n 1 | grep -qE '\((Vulkan|Metal|Dx12),'; then
    echo "test.sh: no usable GPU adapter; installing Mesa's lavapipe (software Vulkan)"
    bash tools/install-lavapipe.sh
    "$mflow" info >/dev/null || { "$mflow" info; exit 1; }
fi
"$mflow" info | tail -n 1
cargo test --release "$@"
