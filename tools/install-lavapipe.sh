#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian 12 machine: a Vulkan loader and,
# when no GPU adapter answers, Mesa's software rasteriser (lavapipe). Prefers Mesa 25
# from bookworm-backports (5-10x faster compute than bookworm's Mesa 22); falls back to
# bookworm's own package. Safe to run repeatedly: it does nothing once lavapipe is there.
set -euo pipefail

have_lavapipe() { ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1; }
have_loader() { ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; }

if have_loader && have_lavapipe; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-lavapipe: no apt-get here; install a Vulkan driver (Mesa lavapipe or a GPU driver) by hand" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# Derive a backports source from the machine's existing Debian entry (deb822 or one-line).
add_backports() {
    local codename
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    [ -n "$codename" ] || return 1
    local list=/etc/apt/sources.list.d/mflow-backports.sources
    [ -f "$list" ] && return 0
    local uri="" keyring=""
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        uri=$(awk '/^URIs:/ && /debian\/?$/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
        keyring=$(awk '/^Signed-By:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    fi
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
        uri=$(awk '$1=="deb" && $0 ~ /debian\/? / {for(i=2;i<=NF;i++) if ($i ~ /^http/) {print $i; exit}}' /etc/apt/sources.list)
    fi
    if [ -z "$uri" ]; then
        echo "install-lavapipe: found no Debian entry in /etc/apt/sources.list.d/debian.sources or" \
            "/etc/apt/sources.list to derive a $codename-backports source from; add one by hand" \
            "(same URI as your Debian entry, suite $codename-backports) or install a Vulkan driver" >&2
        return 1
    fi
    [ -n "$keyring" ] || keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    printf 'Types: deb\nURIs: %s\nSuites: %s-backports\nComponents: main\nSigned-By: %s\n' \
        "$uri" "$codename" "$keyring" | $SUDO tee "$list" >/dev/null
    echo "$codename"
}

export DEBIAN_FRONTEND=noninteractive
codename=$(add_backports || true)
$SUDO apt-get update -qq || true
if [ -n "$codename" ] && $SUDO apt-get install -y -qq -t "$codename-backports" \
        mesa-vulkan-drivers libvulkan1 >/dev/null; then
    echo "install-lavapipe: Mesa from $codename-backports installed"
else
    echo "install-lavapipe: backports failed, installing the suite's own Mesa" >&2
    $SUDO apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
fi
