#!/usr/bin/env bash
# The README's install and purge, on a fresh Debian bookworm root (debootstrap --variant=minbase: no
# python3), amd64 natively or arm64 under qemu-user (binfmt_misc): slow, run by hand as root.
#
#   bench/deb_install.sh --deb dist/lintel_0.1.0_amd64.deb
#   bench/deb_install.sh --deb dist/lintel_0.1.0_arm64.deb --keep
#   bench/deb_install.sh --deb dist/lintel_0.1.0_amd64.deb --upgrade-deb dist/lintel_0.1.1_amd64.deb
#
#   bench/deb_install.sh --readme-commands  # print the README's two commands as this runs them, exit
#
# The README's two install commands ("Installing on a gateway") are read from README.md and run as
# written, as root without sudo, with apt's -y (no terminal to answer): nothing else installs or
# enables the package, so the README cannot drift from what is proven here.
# Steps, each timed and checked, one table at the end:
#   install   README command 1: apt install ./lintel_<v>_<arch>.deb  (pulls python3, python3-venv and
#             their recommends; postinst builds the venv offline from the package's wheels)
#   layout    /opt/lintel/current -> releases/<v>, committed too; lintel user; /etc/lintel/config.toml
#             root:lintel 0640 and a conffile; /var/lib/lintel lintel 0750; the unit
#   check     lintel check-config on the shipped example (fails: it names files the installer must
#             create, as it should); then the README's "edit the config": a minimal one written to
#             /etc/lintel/config.toml, which check-config accepts
#   enable    README command 2: systemctl enable --now lintel, with Debian's systemd installed in the
#             root (minbase has none; a real bookworm does). systemd does not run in a chroot, so
#             this enables (the links) and its start fails with "not been booted with systemd",
#             accepted here; what the start would run is checked by the guard step
#   demo      lintel demo --seconds N --plain (exit 0, and its closing line "demo stopped: N records"
#             with N > 0; under qemu on a loaded machine give it --seconds 60)
#   guard     lintel-guard -c /etc/lintel/config.toml (the unit's ExecStartPre) says "running <v>"
#   upgrade   (with --upgrade-deb) apt-get install of the next version: it is built beside the first,
#             which stays untouched; current -> the new one on probation, committed stays; the guard
#             counts its first start
#   purge     apt-get purge lintel: no /opt/lintel, unit, enable link, /usr/bin/lintel, /etc/lintel, lintel user;
#             /var/lib/lintel kept (it holds undelivered readings) ...
#   purge-data ... and removed when /etc/lintel/purge-data exists (a second install + purge)
# systemd does not run in a chroot: the unit is checked by tests/test_systemd_unit.py, and what it
# would start (the guard, then `lintel run`) is run here by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

deb="" seconds=15 keep=0 dir="" upgrade="" print_only=0
while (($#)); do
    case $1 in
        --readme-commands) print_only=1; shift ;;
        --deb) deb=$(realpath "$2"); shift 2 ;;
        --upgrade-deb) upgrade=$(realpath "$2"); shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --dir) dir=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        *) echo "unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
# The README's install block: its commands, without comments and sudo (this runs as root).
readme_commands() {
    awk '/^## Installing on a gateway/ { s = 1 } s && /^```sh/ { b = 1; next } b && /^```/ { exit } b' README.md |
        sed 's/[[:space:]]#.*//; s/^sudo //; s/[[:space:]]*$//' | grep -v '^$'
}
mapfile -t readme < <(readme_commands)
if ((${#readme[@]} != 2)) || [[ ! ${readme[0]} =~ ^apt\ install\ \./lintel_[^\ ]+\.deb$ ]] ||
    [[ ! ${readme[1]} =~ ^systemctl\ enable\ --now\ lintel$ ]]; then
    printf 'README "Installing on a gateway" no longer holds the two commands this bench runs:\n' >&2
    printf '  %s\n' "${readme[@]}" >&2
    exit 1
fi
# command 1 names the architecture's package: the one under test; -y: no terminal to answer apt
install_cmd="apt install -y ./$(basename "${deb:-lintel_VERSION_ARCH.deb}")"
enable_cmd=${readme[1]}
if ((print_only)); then
    printf '%s\n' "$install_cmd" "$enable_cmd"
    exit 0
fi
[[ -f $deb ]] || { echo "--deb FILE (scripts/build-deb.sh makes it)" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "run as root (debootstrap, chroot, mounts)" >&2; exit 2; }
arch=$(dpkg-deb -f "$deb" Architecture)
version=$(dpkg-deb -f "$deb" Version)
# the same cached root as bench/arm64.sh
dir=${dir:-/var/tmp/lintel-fresh-$arch}
# shellcheck source=bench/fresh_root.sh
source bench/fresh_root.sh
fresh_root_tools
fresh_root_base
[[ $debootstrap_s == "(cached)" ]] || echo "debootstrap: $debootstrap_s s"

declare -A took=() result=()
order=()
step() {  # step NAME CMD...: run, time, record ok/FAILED
    local name=$1 t0; shift
    order+=("$name")
    t0=$(now)
    if "$@" >>"$dir/$name.log" 2>&1; then result[$name]=ok; else result[$name]="FAILED (see $dir/$name.log)"; fi
    took[$name]=$(secs "$t0" "$(now)")
}

trap fresh_root_cleanup EXIT
fresh_root install
cp "$deb" "$root/tmp/"
[[ -n $upgrade ]] && cp "$upgrade" "$root/tmp/"
in_root() { in_fresh_root "$1" DEBIAN_FRONTEND=noninteractive; }
pkg=/tmp/$(basename "$deb")
rm -f "$dir"/*.log

step install in_root "apt-get update -qq && cd /tmp && $install_cmd"
step layout in_root "
    test \"\$(readlink /opt/lintel/current)\" = releases/$version
    test \"\$(readlink /opt/lintel/committed)\" = releases/$version
    getent passwd lintel
    test \"\$(stat -c '%U:%G %a' /etc/lintel/config.toml)\" = 'root:lintel 640'
    test \"\$(stat -c '%U:%G %a' /var/lib/lintel)\" = 'lintel:lintel 750'
    dpkg-query -W -f='\${Conffiles}' lintel | grep -q /etc/lintel/config.toml
    test -f /lib/systemd/system/lintel.service
    test \"\$(lintel-does-not-exist 2>/dev/null; readlink -f /usr/bin/lintel)\" = /opt/lintel/releases/$version/bin/lintel"
step check in_root "
    mkdir -p /tmp/gw && printf '[gateway]\nid = \"bldg-1\"\nsite = \"s\"\nstate_dir = \"/tmp/gw\"\nruntime_dir = \"/tmp/gw/run\"\n' >/tmp/gw/config.toml
    lintel check-config -c /tmp/gw/config.toml
    ! lintel check-config -c /etc/lintel/config.toml
    printf '[gateway]\nid = \"bldg-1\"\nsite = \"s\"\n' >/etc/lintel/config.toml
    lintel check-config -c /etc/lintel/config.toml"
# systemctl makes the links, then cannot start the unit (no systemd runs in a chroot): that refusal,
# and only it, is expected here
step enable in_root "
    command -v systemctl >/dev/null || apt-get install -y -q systemd
    $enable_cmd 2>&1 | tee /tmp/enable.out || grep -q 'not been booted with systemd' /tmp/enable.out
    test -L /etc/systemd/system/multi-user.target.wants/lintel.service
    test -L /etc/systemd/system/multi-user.target.wants/lintel-update.path
    systemctl is-enabled lintel.service"
# the demo's closing line counts what it took: a demo that took nothing, or was cut short before
# it could say so (a slow stop under qemu), is not a working lintel
step demo in_root "
    cd /tmp && lintel demo --seconds $seconds --plain --state-dir /tmp/demo >/tmp/demo.out
    tail -5 /tmp/demo.out
    grep -Eq '^demo stopped: [1-9][0-9]* records' /tmp/demo.out"
step guard in_root "/opt/lintel/committed/bin/lintel-guard -c /etc/lintel/config.toml | grep 'running $version'"
if [[ -n $upgrade ]]; then
    next=$(dpkg-deb -f "$upgrade" Version)
    step upgrade in_root "
        before=\$(find /opt/lintel/releases/$version -newer /opt/lintel/releases/$version/RELEASE | wc -l)
        apt-get install -y -q --no-install-recommends /tmp/$(basename "$upgrade")
        test \"\$(readlink /opt/lintel/current)\" = releases/$next
        test \"\$(readlink /opt/lintel/committed)\" = releases/$version
        test \"\$(find /opt/lintel/releases/$version -newer /opt/lintel/releases/$version/RELEASE | wc -l)\" = \"\$before\"
        grep -q '\"phase\": \"probation\"' /var/lib/lintel/release-update.json
        /opt/lintel/committed/bin/lintel-guard -c /etc/lintel/config.toml | grep 'probation of $next: start 1 of 3'
        lintel releases"
fi
step purge in_root "
    echo data >/var/lib/lintel/outbox.db
    apt-get purge -y -q lintel
    test ! -e /opt/lintel && test ! -e /lib/systemd/system/lintel.service && test ! -e /usr/bin/lintel
    test -z \"\$(find /etc/systemd -name 'lintel*')\"
    test ! -e /etc/lintel && test ! -e /usr/lib/lintel
    ! getent passwd lintel && ! getent group lintel
    test -f /var/lib/lintel/outbox.db"
step purge-data in_root "
    apt-get install -y -q --no-install-recommends $pkg
    touch /etc/lintel/purge-data
    apt-get purge -y -q lintel
    test ! -e /var/lib/lintel && test ! -e /opt/lintel && ! getent passwd lintel"

printf '\n%-12s %-8s %s\n' step seconds result
for name in "${order[@]}"; do printf '%-12s %-8s %s\n' "$name" "${took[$name]}" "${result[$name]}"; done
printf 'package %s (%s MB), %s, root %s\n' "$(basename "$deb")" "$(($(stat -c %s "$deb") / 1048576))" "$arch" "$root"
for name in "${order[@]}"; do [[ ${result[$name]} == ok ]] || exit 1; done
