#!/usr/bin/env bash
# One-time, idempotent machine setup for bpfnb (run by `make setup`, which
# `make demo` and `make test` call). Cheap to re-run: every step checks first.
#
#  1. the distribution's bcc (python3-bpfcc, libbpfcc) and bpftrace
#     -- never the PyPI package named "bcc", an unrelated project;
#  2. kernel headers: linux-headers-$(uname -r), or the closest the
#     distribution has, linked in as /lib/modules/$(uname -r)/build;
#  3. tracefs and debugfs mounted;
#  4. .venv on the machine's python3 with bpfnb installed editable and the
#     distribution's bcc importable from it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
STAMP=.venv/.bpfnb-setup
say() { printf '[setup] %s\n' "$*"; }
warn() { printf '[setup] WARNING: %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else warn "not root: cannot run $*"; return 1; fi; }

apt_install() {
    local missing=()
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing ${missing[*]}"
    if [ ! -f /tmp/.bpfnb-apt-updated ]; then as_root apt-get update -qq && touch /tmp/.bpfnb-apt-updated; fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

system_packages() {
    command -v apt-get >/dev/null || { warn "no apt-get: install bcc (python3-bpfcc), bpftrace and kernel headers yourself"; return 0; }
    apt_install python3-bpfcc libbpfcc bpftrace gcc make libc6-dev systemtap-sdt-dev iproute2 nftables chromium ${EXTRA_APT:-}
}

kernel_headers() {
    local rel build; rel=$(uname -r); build=/lib/modules/$rel/build
    if [ -e "$build/include/generated/autoconf.h" ] && { [ -e "$build/include/linux/kconfig.h" ] || [ -e "/lib/modules/$rel/source/include/linux/kconfig.h" ]; }; then
        return 0
    fi
    [ -e /sys/kernel/kheaders.tar.xz ] && return 0  # bcc uses the in-kernel headers itself
    command -v apt-get >/dev/null || { warn "no headers for $rel in $build"; return 0; }
    [ -f /tmp/.bpfnb-apt-updated ] || { as_root apt-get update -qq && touch /tmp/.bpfnb-apt-updated; }
    if apt-cache show "linux-headers-$rel" >/dev/null 2>&1; then
        apt_install "linux-headers-$rel"; return 0
    fi
    # The closest headers the distribution has: the newest versioned
    # linux-headers-X.Y.Z-N-<flavour> package for this architecture.
    local arch flavour pkg dir
    arch=$(dpkg --print-architecture)
    flavour=$arch; [ "$arch" = amd64 ] || [ "$arch" = arm64 ] || flavour=$arch
    pkg=$(apt-cache search --names-only "^linux-headers-[0-9.]+[-+][^ ]*-${flavour}\$" | awk '{print $1}' \
          | grep -v -E -- '-(rt|cloud)-' | sort -V | tail -n 1)
    if [ -z "$pkg" ]; then warn "no kernel headers found for $rel; programs that include kernel structs will not compile"; return 0; fi
    apt_install "$pkg"
    # Debian splits headers into an arch part (build) and a common part
    # (source); the package's own /lib/modules/<ver> links say which is which.
    local ver=${pkg#linux-headers-} src
    dir=$(readlink -f "/lib/modules/$ver/build" || echo "/usr/src/$pkg")
    src=$(readlink -f "/lib/modules/$ver/source" || echo "$dir")
    as_root mkdir -p "/lib/modules/$rel"
    as_root ln -sfn "$dir" "$build"
    as_root ln -sfn "$src" "/lib/modules/$rel/source"
    warn "no headers for kernel $rel: using $pkg as a stand-in (linked as $build)."
    warn "kernel struct layouts (task_struct, sock, ...) may differ from the running kernel; tracepoint arguments are unaffected."
}

mount_fs() {
    if [ -d /sys/kernel/tracing ] && [ ! -e /sys/kernel/tracing/events ]; then
        as_root mount -t tracefs tracefs /sys/kernel/tracing && say "mounted tracefs on /sys/kernel/tracing" || warn "could not mount tracefs"
    fi
    if [ -d /sys/kernel/debug ] && ! mountpoint -q /sys/kernel/debug; then
        as_root mount -t debugfs debugfs /sys/kernel/debug && say "mounted debugfs on /sys/kernel/debug" || warn "could not mount debugfs"
    fi
}

python_env() {
    local want; want=$(cat pyproject.toml scripts/setup.sh | sha1sum | cut -c1-16)
    if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x .venv/bin/python ]; then return 0; fi
    [ -x .venv/bin/python ] || { say "creating .venv on $($PY --version)"; $PY -m venv .venv; }
    say "installing bpfnb (editable) and its dependencies into .venv"
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -e ".[dev,fleet]"
    # bcc's Python side is pure Python over libbcc.so (ctypes): expose the
    # distribution's copy, and only it, to the venv.
    local site bccdir
    site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    bccdir=$(ls -d /usr/lib/python3/dist-packages/bcc 2>/dev/null || true)
    if [ -n "$bccdir" ]; then
        mkdir -p .venv/bcc-dist && ln -sfn "$bccdir" .venv/bcc-dist/bcc
        echo "$ROOT/.venv/bcc-dist" > "$site/bpfnb-distro-bcc.pth"
    else
        warn "the distribution's bcc Python package was not found; kernel tracing will not work"
    fi
    echo "$want" > "$STAMP"
}

system_packages
kernel_headers
mount_fs
python_env
.venv/bin/python -c 'import bcc' 2>/dev/null && say "ready: bcc importable from .venv" || warn "bcc is not importable from .venv"
