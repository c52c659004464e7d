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
# Under qemu-user, /proc/cpuinfo is the host's (x86): onnxruntime's ARM feature probe reads it and
# aborts, so an ARM cpuinfo (a Raspberry Pi 4's) is bound over it. A real Pi has its own.
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
host_arch=$(dpkg --print-architecture)

need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
if [[ $arch != "$host_arch" ]]; then
    command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
    command -v update-binfmts >/dev/null || need+=(binfmt-support)
fi
if ((${#need[@]})); then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [[ $arch != "$host_arch" ]]; then
    # binfmt_misc runs aarch64 binaries through qemu; the F flag (fix binary) keeps the emulator
    # open by the kernel, so the chroot does not need a copy of it.
    mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    [[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]] || update-binfmts --enable qemu-aarch64 ||
        update-binfmts --import qemu-aarch64
    grep -q '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 || {
        echo "qemu-aarch64 is registered without the F flag: the chroot cannot run it" >&2
        exit 1
    }
fi

mkdir -p "$dir"
base=$dir/base.tar
log=$dir/bench.log
: >"$log"
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", b - a }'; }

# -- the clean root, built once and unpacked fresh for each scenario ------------------------------
debootstrap_s="(cached)"
if [[ ! -f $base ]]; then
    t0=$(now)
    rm -rf "$dir/build"
    # minbase: dpkg, apt and the essential set only, like a trimmed Raspberry Pi OS Lite without python3
    debootstrap --variant=minbase --arch="$arch" bookworm "$dir/build" >>"$log" 2>&1
    tar -C "$dir/build" -cf "$base" .
    rm -rf "$dir/build"
    debootstrap_s=$(secs "$t0" "$(now)")
fi

root=""
mounted=()
unmount_all() {
    local m
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        m=${mounted[i]}
        umount -l "$m" 2>/dev/null || true
    done
    mounted=()
}
kill_chroot() {  # every process whose root is the chroot: what this script started in it
    local p
    for p in /proc/[0-9]*; do
        [[ $(readlink "$p/root" 2>/dev/null) == "$root" ]] && kill -9 "${p#/proc/}" 2>/dev/null || true
    done
}
cleanup() {
    [[ -n $root ]] && kill_chroot
    unmount_all
    if ((!keep)) && [[ -n $root ]]; then rm -rf "$root"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fresh_root() {  # fresh_root NAME: unpack the base, copy the checkout and the network settings in
    cleanup
    root=$dir/$1
    rm -rf "$root"
    mkdir -p "$root"
    tar -C "$root" -xf "$base"
    mkdir -p "$root/opt/lintel"
    git -C "$repo" ls-files -z --cached --others --exclude-standard |
        (cd "$repo" && xargs -0 cp --parents -t "$root/opt/lintel" 2>/dev/null || true)
    # This machine reaches the registries through its own resolver and CA bundle; a Pi on a
    # building's network needs none of this.
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    # Local CAs go where update-ca-certificates (run when the root installs ca-certificates) adds
    # them to the bundle; the bundle itself too, for what runs before that.
    mkdir -p "$root/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
    [[ -f /etc/ssl/certs/ca-certificates.crt ]] && install -D -m 644 /etc/ssl/certs/ca-certificates.crt \
        "$root/etc/ssl/certs/ca-certificates.crt"
    for f in /etc/apt/apt.conf.d/99artifact-registry /etc/apt/sources.list.d/debian.sources /etc/npmrc; do
        [[ -f $f ]] && install -D -m 644 "$f" "$root$f"
    done
    [[ -f $root/etc/apt/sources.list.d/debian.sources ]] && rm -f "$root/etc/apt/sources.list"
    for m in proc sys dev dev/pts; do
        mount --bind "/$m" "$root/$m"
        mounted+=("$root/$m")
    done
    if [[ $arch == arm64 && $host_arch != arm64 ]]; then
        install -m 644 /dev/null "$dir/cpuinfo"
        for n in 0 1 2 3; do
            printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n' "$n"
            printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\n'
            printf 'CPU revision\t: 3\n\n'
        done >"$dir/cpuinfo"
        mount --bind "$dir/cpuinfo" "$root/proc/cpuinfo"
        mounted+=("$root/proc/cpuinfo")
    fi
}

run_demo() {  # run_demo LOGNAME: the README's demo command inside the root; prints its exit code
    local out=$dir/$1.log
    chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 TERM=dumb PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
        /bin/bash -c "cd /opt/lintel && scripts/demo.sh --seconds $seconds --plain" >"$out" 2>&1 &&
        echo 0 || echo $?
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
    fresh_root first
    t0=$(now)
    result[first]=$(run_demo first)
    took[first]=$(secs "$t0" "$(now)")
fi

if [[ -z $only || $only == resumed ]]; then
    fresh_root resumed
    t0=$(now)
    setsid chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 TERM=dumb PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
        /bin/bash -c "cd /opt/lintel && scripts/demo.sh --seconds $seconds --plain" >"$dir/interrupted.log" 2>&1 &
    pid=$!
    disown "$pid"  # killed on purpose below: no "Killed" report from bash
    killed=no
    while kill -0 "$pid" 2>/dev/null; do
        if kill_point_reached; then
            kill -9 -- "-$pid" 2>/dev/null || true
            kill_chroot
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
