# shellcheck shell=bash disable=SC2154,SC2034  # arch, dir, keep come from the caller; it reads debootstrap_s
# A fresh Debian bookworm root (debootstrap --variant=minbase: dpkg, apt and the essential set, no
# python3), amd64 natively or arm64 under qemu-user through binfmt_misc. Sourced by the benches that
# need a machine nobody has touched (bench/arm64.sh: the README's demo from a checkout;
# bench/deb_install.sh: the README's install of the .deb); run as root, by hand.
#
# The caller sets `arch` (arm64 or amd64), `dir` (where the cached base and the roots live) and
# `keep` (1: leave the roots to look inside). This file gives:
#   now, secs T0 T1         a timestamp; whole seconds between two
#   fresh_root_tools        installs debootstrap (and qemu-user-static, binfmt-support for a foreign
#                           arch) with apt-get when missing; registers qemu-aarch64 (F flag)
#   fresh_root_base         $dir/base.tar, debootstrapped once and cached; sets `debootstrap_s`
#                           (seconds, or "(cached)"); its log is $dir/debootstrap.log
#   fresh_root NAME         cleans up the previous root, unpacks the base as $dir/NAME (`root`),
#                           copies this machine's network settings in, bind-mounts proc, sys, dev
#   fresh_root_kill         kills every process whose root is `root`
#   fresh_root_cleanup      fresh_root_kill, unmounts, removes the root unless `keep` (an EXIT
#                           trap; also called by fresh_root)
#   in_fresh_root CMD [VAR=value...]  bash -ec CMD (with pipefail) in the root, the environment
#                           cleared but for ROOT_ENV and the VARs given
# Under qemu-user, /proc/cpuinfo is the host's (x86): onnxruntime's ARM feature probe reads it and
# aborts, so an ARM cpuinfo (a Raspberry Pi 4's) is bound over it. A real Pi has its own.

host_arch=$(dpkg --print-architecture)
root=""
mounted=()
debootstrap_s="(cached)"
ROOT_ENV=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb)

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", b - a }'; }

fresh_root_tools() {
    local need=()
    command -v debootstrap >/dev/null || need+=(debootstrap)
    if [[ $arch != "$host_arch" ]]; then
        command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
        command -v update-binfmts >/dev/null || need+=(binfmt-support)
    fi
    if ((${#need[@]})); then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    fi
    [[ $arch != "$host_arch" ]] || return 0
    # binfmt_misc runs aarch64 binaries through qemu; the F flag (fix binary) keeps the emulator
    # open by the kernel, so the chroot does not need a copy of it.
    mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    [[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]] || update-binfmts --enable qemu-aarch64 ||
        update-binfmts --import qemu-aarch64
    grep -q '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 || {
        echo "qemu-aarch64 is registered without the F flag: the chroot cannot run it" >&2
        exit 1
    }
}

fresh_root_base() {
    local t0
    mkdir -p "$dir"
    [[ ! -f $dir/base.tar ]] || return 0
    t0=$(now)
    rm -rf "$dir/build"
    # minbase: dpkg, apt and the essential set only, like a trimmed Raspberry Pi OS Lite without python3
    debootstrap --variant=minbase --arch="$arch" bookworm "$dir/build" >"$dir/debootstrap.log" 2>&1
    tar -C "$dir/build" -cf "$dir/base.tar" .
    rm -rf "$dir/build"
    debootstrap_s=$(secs "$t0" "$(now)")
}

fresh_root_kill() {  # every process whose root is the chroot: what the bench started in it
    local p
    [[ -n $root ]] || return 0
    for p in /proc/[0-9]*; do
        [[ $(readlink "$p/root" 2>/dev/null) == "$root" ]] && kill -9 "${p#/proc/}" 2>/dev/null || true
    done
}

fresh_root_cleanup() {
    local i
    fresh_root_kill
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
    mounted=()
    if ((!keep)) && [[ -n $root ]]; then rm -rf "$root"; fi
}

fresh_root() {
    local f m n
    fresh_root_cleanup
    root=$dir/$1
    rm -rf "$root" && mkdir -p "$root" && tar -C "$root" -xf "$dir/base.tar"
    # This machine reaches the registries through its own resolver and CA bundle; a Pi on a
    # building's network needs none of this. Local CAs go where update-ca-certificates (run when
    # the root installs ca-certificates) adds them; the bundle itself too, for what runs before.
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    mkdir -p "$root/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
    if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
        install -D -m 644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
    fi
    for f in /etc/apt/apt.conf.d/99artifact-registry /etc/apt/sources.list.d/debian.sources /etc/npmrc; do
        [[ -f $f ]] && install -D -m 644 "$f" "$root$f"
    done
    [[ -f $root/etc/apt/sources.list.d/debian.sources ]] && rm -f "$root/etc/apt/sources.list"
    for m in proc sys dev dev/pts; do mount --bind "/$m" "$root/$m" && mounted+=("$root/$m"); done
    if [[ $arch == arm64 && $host_arch != arm64 ]]; then
        install -m 644 /dev/null "$dir/cpuinfo"
        for n in 0 1 2 3; do
            printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n' "$n"
            printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\n'
            printf 'CPU revision\t: 3\n\n'
        done >"$dir/cpuinfo"
        mount --bind "$dir/cpuinfo" "$root/proc/cpuinfo" && mounted+=("$root/proc/cpuinfo")
    fi
}

in_fresh_root() {
    local cmd=$1
    shift
    chroot "$root" /usr/bin/env -i "${ROOT_ENV[@]}" "$@" /bin/bash -ec "set -o pipefail; $cmd"
}
