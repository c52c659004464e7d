#!/usr/bin/env bash
# A fresh machine, on demand: does the README's demo command work the first time, and after a set-up
# that was interrupted? Builds a clean Debian bookworm root (debootstrap --variant=minbase: no python3,
# no venv, no compiler) for arm64 (a Raspberry Pi, emulated with qemu-user-static through binfmt_misc)
# or amd64, copies this checkout's tracked files into it (no .venv, no built models, no media), and
# times two scenarios, each on its own fresh copy of the root:
#   first    scripts/demo.sh --seconds N --plain on the fresh machine;
#   resumed  scripts/demo.sh killed (SIGKILL, whole process group) at a point of set-up, then run again.
# Kill points (--kill-at): venv = as soon as .venv/bin/python exists (the venv is half built: no pip
# yet), apt = while dpkg is unpacking the first OS packages, pip = while pip installs Lintel.
# Prints one table. Run as root by hand (slow: not CI). Needs debootstrap (and qemu-user-static for
# arm64); installs them with apt-get when missing.
#
#   bench/arm64.sh                          # arm64, both scenarios, kill at venv
#   bench/arm64.sh --arch amd64 --kill-at apt
#   bench/arm64.sh --only first --keep      # keep the roots under --dir to look inside
#
# The fresh root (debootstrap, cached; network settings; mounts; qemu for arm64) is bench/fresh_root.sh,
# shared with bench/deb_install.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

arch=arm64 seconds=20 kill_at=venv only="" keep=0 dir=""
while (($#)); do
    case $1 in
        --arch) arch=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --kill-at) kill_at=$2; shift 2 ;;
        --only) only=$2; shift 2 ;;
        --dir) dir=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        *) echo "unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
[[ $arch == arm64 || $arch == amd64 ]] || { echo "--arch arm64 or amd64" >&2; exit 2; }
[[ $kill_at =~ ^(venv|apt|pip)$ ]] || { echo "--kill-at venv, apt or pip" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "run as root (debootstrap, chroot, mounts)" >&2; exit 2; }
dir=${dir:-/var/tmp/lintel-fresh-$arch}
# shellcheck source=bench/fresh_root.sh
source bench/fresh_root.sh
fresh_root_tools
fresh_root_base  # the clean root, built once and unpacked fresh for each scenario
trap fresh_root_cleanup EXIT
trap 'exit 130' INT TERM

checkout_root() {  # checkout_root NAME: a fresh root with this checkout's files in /opt/lintel
    fresh_root "$1"
    mkdir -p "$root/opt/lintel"
    git -C "$repo" ls-files -z --cached --others --exclude-standard |
        (cd "$repo" && xargs -0 cp --parents -t "$root/opt/lintel" 2>/dev/null || true)
}

DEMO="cd /opt/lintel && scripts/demo.sh --seconds $seconds --plain"
PIP_CERT_ENV=PIP_CERT=/etc/ssl/certs/ca-certificates.crt

run_demo() {  # run_demo LOGNAME: the README's demo command inside the root; prints its exit code
    in_fresh_root "$DEMO" "$PIP_CERT_ENV" >"$dir/$1.log" 2>&1 && echo 0 || echo $?
}

kill_point_reached() {
    case $kill_at in
        venv) [[ -e $root/opt/lintel/.venv/bin/python ]] ;;
        pip) [[ -n $(compgen -G "$root/opt/lintel/.venv/lib/python3*/site-packages/pydantic*") ]] ;;
        apt)
            local p
            for p in /proc/[0-9]*; do
                [[ $(readlink "$p/root" 2>/dev/null) == "$root" && $(cat "$p/comm" 2>/dev/null) == dpkg ]] &&
                    return 0
            done
            return 1
            ;;
    esac
}

declare -A result=()
declare -A took=()

if [[ -z $only || $only == first ]]; then
    checkout_root first
    t0=$(now)
    result[first]=$(run_demo first)
    took[first]=$(secs "$t0" "$(now)")
fi

if [[ -z $only || $only == resumed ]]; then
    checkout_root resumed
    t0=$(now)
    # in a session of its own, so the kill below reaches the whole process group
    setsid chroot "$root" /usr/bin/env -i "${ROOT_ENV[@]}" "$PIP_CERT_ENV" /bin/bash -c "$DEMO" \
        >"$dir/interrupted.log" 2>&1 &
    pid=$!
    disown "$pid"  # killed on purpose below: no "Killed" report from bash
    killed=no
    while kill -0 "$pid" 2>/dev/null; do
        if kill_point_reached; then
            kill -9 -- "-$pid" 2>/dev/null || true
            fresh_root_kill
            killed=yes
            break
        fi
        sleep 0.05
    done
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    took[interrupted]=$(secs "$t0" "$(now)")
    result[interrupted]="killed at $kill_at: $killed"
    t0=$(now)
    result[resumed]=$(run_demo resumed)
    took[resumed]=$(secs "$t0" "$(now)")
fi

printf '\nfresh Debian bookworm %s (minbase, no python3), demo for %s s; logs in %s\n' "$arch" "$seconds" "$dir"
printf '%-28s %-24s %s\n' "step" "result" "seconds"
printf '%-28s %-24s %s\n' "debootstrap" "ok" "$debootstrap_s"
if [[ -n ${took[first]:-} ]]; then
    printf '%-28s %-24s %s\n' "first run (set-up + demo)" "exit ${result[first]}" "${took[first]}"
fi
if [[ -n ${took[resumed]:-} ]]; then
    printf '%-28s %-24s %s\n' "interrupted first run" "${result[interrupted]}" "${took[interrupted]}"
    printf '%-28s %-24s %s\n' "second run (resumes)" "exit ${result[resumed]}" "${took[resumed]}"
fi
failed=0
for k in first resumed; do
    [[ -z ${result[$k]:-} || ${result[$k]} == 0 ]] || { failed=1; echo "-- $k failed, end of its log:"; tail -25 "$dir/$k.log"; }
done
exit $failed
