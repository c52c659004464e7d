#!/usr/bin/env bash
# Real photographs for the fire-lane demo and tests, from Debian packages (no downloads at run time).
#   scripts/fetch_media.sh          -> .cache/media/darknet/{dog,person}.jpg (the demo's car and pedestrian)
#   scripts/fetch_media.sh --test   -> also .cache/media/opencv-doc/{building,pexels_double_decker_bus}.jpg
# Every file is checked against scripts/media.sha256. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
media=.cache/media
want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

fetch() {  # fetch PACKAGE SUBDIR FILE...
    local pkg=$1 dest=$media/$2; shift 2
    local missing=0
    for f in "$@"; do [[ -f $dest/$(basename "$f") ]] || missing=1; done
    ((missing)) || return 0
    local tmp; tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download "$pkg" >/dev/null 2>&1) || {
        [[ $(id -u) == 0 ]] && apt-get update -qq && (cd "$tmp" && apt-get download "$pkg" >/dev/null)
    }
    dpkg-deb -x "$tmp"/"$pkg"_*.deb "$tmp/x"
    mkdir -p "$dest"
    for f in "$@"; do cp "$tmp/x/$f" "$dest/"; done
    rm -rf "$tmp"
}

fetch darknet darknet usr/share/darknet/data/dog.jpg usr/share/darknet/data/person.jpg
if ((want_test)); then
    fetch opencv-doc opencv-doc usr/share/doc/opencv-doc/examples/data/building.jpg \
        usr/share/doc/opencv-doc/opencv4/html/pexels_double_decker_bus.jpg
fi
(cd $media && grep -E "darknet/$( ((want_test)) && echo '|opencv-doc/')" ../../scripts/media.sha256 | sha256sum --quiet -c -) || {
    echo "fetch_media: a photograph does not match scripts/media.sha256; delete $media and retry" >&2
    exit 1
}
