#!/bin/bash
# Prepare this machine to run and test shelve-lifecycle (Debian 12, as root).
#
#   1. install the Debian packages of bindep.txt that are missing (QEMU,
#      libvirt, and Ceph's ceph-common, ceph-mon, ceph-osd, qemu-block-extra
#      for the rbd storage backend and its single-node test cluster);
#   2. build .venv (from /usr/bin/python3) with the pinned Python packages and
#      the project installed editable -- skipped when .venv is up to date;
#   3. let QEMU use /dev/kvm;
#   4. start virtlogd and libvirtd when they are not running and wait until
#      qemu:///system answers.
#
# Idempotent: a second run does no apt or pip work. Needs no stdin.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

PYTHON=/usr/bin/python3
# Debian 12's bundled pip (23.0) installs a setup.py-only project with the
# legacy "setup.py develop" path; a newer pip uses PEP 517/660 instead.
PIP_VERSION=26.3
VENV="$ROOT/.venv"
STAMP="$VENV/.lifecycle-setup.sha256"
LIBVIRT_URI=qemu:///system
LIBVIRT_WAIT=30

say() { echo "setup: $*"; }
die() { echo "setup: ERROR: $*" >&2; exit 1; }

exec </dev/null
export DEBIAN_FRONTEND=noninteractive

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        die "need root for: $*"
    fi
}

# Run a noisy command with its output appended to a log; show the log's end
# on failure.
run_logged() {
    local log=$1 rc=0
    shift
    "$@" >>"$log" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "setup: FAILED ($rc): $*" >&2
        echo "setup: last lines of $log:" >&2
        tail -n 60 "$log" >&2
        exit "$rc"
    fi
}

# --- 1. Debian packages ------------------------------------------------------

# Default-profile entries of bindep.txt for dpkg platforms: lines without a
# [...] selector, or whose selector holds only platform:dpkg/platform:debian.
bindep_packages() {
    local line name sel tok ok
    while IFS= read -r line || [ -n "$line" ]; do
        line=${line%%#*}
        read -r name _ <<<"$line" || true
        [ -n "${name:-}" ] || continue
        if [[ $line == *\[*\]* ]]; then
            sel=${line#*\[}
            sel=${sel%%\]*}
            ok=no
            for tok in $sel; do
                case $tok in
                    platform:dpkg|platform:debian) ok=yes ;;
                    platform:*) ;;
                    *) ok=no; break ;;  # a profile (services) or negation
                esac
            done
            [ "$ok" = yes ] || continue
        fi
        echo "$name"
    done < "$ROOT/bindep.txt"
}

missing=()
for pkg in $(bindep_packages); do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = installed ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    apt_log=$(mktemp /tmp/lifecycle-setup-apt.XXXXXX.log)
    start=$SECONDS
    run_logged "$apt_log" as_root apt-get update
    run_logged "$apt_log" as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}"
    rm -f "$apt_log"
    say "Debian packages installed in $((SECONDS - start))s"
else
    say "Debian packages: all present"
fi

# --- 2. Python virtualenv ----------------------------------------------------

[ -x "$PYTHON" ] || die "$PYTHON not found (package python3)"

# What the venv is built from; any change triggers a pip run.
want_hash=$(
    {
        "$PYTHON" -c 'import sys; print(sys.version)'
        echo "pip==$PIP_VERSION"
        for f in requirements.txt test-requirements.txt constraints.txt \
                 setup.cfg setup.py; do
            echo "== $f"
            cat "$f"
        done
    } | sha256sum | cut -d' ' -f1
)

# A venv made by another interpreter (e.g. pyenv) or a broken one is rebuilt.
venv_ok=no
if [ -x "$VENV/bin/python" ] && [ -f "$VENV/pyvenv.cfg" ] &&
        grep -qx 'home = /usr/bin' "$VENV/pyvenv.cfg" &&
        "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    venv_ok=yes
fi

if [ "$venv_ok" = yes ] && [ -f "$STAMP" ] &&
        [ "$(cat "$STAMP")" = "$want_hash" ]; then
    say "virtualenv .venv: up to date"
else
    if [ "$venv_ok" != yes ]; then
        say "creating .venv from $PYTHON ($("$PYTHON" -V 2>&1))"
        rm -rf "$VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    rm -f "$STAMP"
    say "installing Python packages into .venv (libvirt-python compiles;" \
        "may take a few minutes)"
    start=$SECONDS
    pip_log="$VENV/setup-pip.log"
    : > "$pip_log"
    run_logged "$pip_log" "$VENV/bin/python" -m pip install \
        --progress-bar off "pip==$PIP_VERSION"
    run_logged "$pip_log" "$VENV/bin/python" -m pip install \
        --progress-bar off \
        -c constraints.txt -r requirements.txt -r test-requirements.txt -e .
    echo "$want_hash" > "$STAMP"
    say "Python packages installed in $((SECONDS - start))s (log:" \
        ".venv/setup-pip.log)"
fi

# --- 3. /dev/kvm ------------------------------------------------------------

if [ -e /dev/kvm ]; then
    if getent group kvm >/dev/null; then
        as_root chgrp kvm /dev/kvm
        as_root chmod 660 /dev/kvm
        say "/dev/kvm: group kvm, mode 660"
    else
        say "WARNING: /dev/kvm exists but group kvm does not; QEMU may not" \
            "use KVM"
    fi
else
    say "/dev/kvm absent: guests will use software emulation (TCG)"
fi

# --- 4. libvirt daemons ------------------------------------------------------

if [ -d /run/systemd/system ] &&
        [ "$(ps -p 1 -o comm= 2>/dev/null)" = systemd ]; then
    for unit in virtlogd libvirtd; do
        if ! systemctl is-active --quiet "$unit"; then
            say "starting $unit (systemd)"
            as_root systemctl start "$unit"
        fi
    done
else
    for daemon in virtlogd libvirtd; do
        if pgrep -x "$daemon" >/dev/null; then
            continue
        fi
        say "starting $daemon"
        as_root "$daemon" -d
    done
fi

deadline=$((SECONDS + LIBVIRT_WAIT))
until out=$(timeout 10 virsh -c "$LIBVIRT_URI" version 2>&1); do
    if [ $SECONDS -ge $deadline ]; then
        echo "$out" >&2
        die "libvirtd did not answer at $LIBVIRT_URI within ${LIBVIRT_WAIT}s"
    fi
    sleep 1
done
say "libvirt at $LIBVIRT_URI: $(echo "$out" | grep -m1 'Running hypervisor' \
    || echo "$out" | head -n1)"
say "done"
