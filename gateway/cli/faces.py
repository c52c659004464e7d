"""`lintel faces init-key|enroll|tag|list|delete|verify|calibrate`: the face gallery, for installers
and building managers.

Photos are judged by the same pipeline as the door camera's frames (quality gates included), so
a photo refused here would have been useless at the door. Nothing but the encrypted descriptor
and the quality figures is stored: no photo, no name. The running daemon sees an enrolment or a
deletion within a second (it polls the gallery's generation).
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.cli.args import action, tool
from gateway.cli.config_file import read_config
from gateway.cli.output import console, err_console, esc, print_json, table

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def add_parsers(sub: Any) -> None:
    actions = tool(sub, "faces", "face gallery: enrol, list, delete, verify, calibrate")
    action(actions, "init-key", "create the gallery key (mode 0600) if there is none")
    q = action(actions, "enroll", "add a resident from photos or from a camera")
    q.add_argument("images", nargs="*", type=Path, help="photos of the resident alone, facing the camera")
    q.add_argument("--resident", required=True, help="resident id, e.g. r-0412 (never a name)")
    q.add_argument("--unit", required=True, help="flat or unit, e.g. 3-1202")
    q.add_argument("--consent", required=True, help='how consent was given, e.g. "signed form 2026-118"')
    q.add_argument("--consent-by", default="resident", help="who gave it (resident, guardian, …)")
    q.add_argument("--door", action="append", default=[], help="allowed door id (repeat; default: all)")
    q.add_argument(
        "--window",
        action="append",
        default=[],
        help='allowed hours, e.g. "mon-fri 07:00-22:00" (repeat; default: any time)',
    )
    q.add_argument("--camera", help="take the photos from this camera instead")
    q.add_argument("--shots", type=int, default=3, help="good frames to take from the camera")
    q.add_argument("--force", action="store_true", help="enrol even if the face matches another resident")
    q = action(actions, "tag", "give a resident a BLE tag (face+tag doors), or --remove it")
    q.add_argument("resident_id")
    q.add_argument("--address", help="the tag's Bluetooth address, e.g. 3C:2E:F5:0A:11:7B")
    q.add_argument(
        "--bindkey-file", type=Path, help="file holding the tag's bindkey (32 hex digits; - for stdin)"
    )
    q.add_argument("--remove", action="store_true", help="remove the resident's tag")
    action(actions, "list", "residents, units, consent records, template counts")
    q = action(actions, "delete", "remove a resident and purge their templates from the disk")
    q.add_argument("resident_id")
    q = action(actions, "verify", "who would a photo match, with distances")
    q.add_argument("image", type=Path)
    q = action(actions, "calibrate", "labelled photos → distance distributions, suggested threshold")
    q.add_argument("folder", type=Path, help="one sub-folder of photos per person")
    q.add_argument("--far", type=float, default=0.001, help="target pair false-accept rate (default 0.001)")
    q.add_argument(
        "--gallery-size",
        type=int,
        help="residents at the door, for the per-frame FAR (default: the configured gallery's, or 1000)",
    )
    q.add_argument("--templates", type=int, default=3, help="templates per resident (default 3)")
    q.add_argument("--plot", type=Path, help="write the distributions as a PNG")


@dataclass
class Context:
    loaded: Any
    gallery_path: Path
    key_path: Path

    @property
    def faces(self) -> Any:
        return self.loaded.config.faces

    def pipeline(self) -> Any:
        from gateway.inference.catalog import configured
        from gateway.inference.engine import InferenceEngine
        from gateway.lanes.faces.pipeline import build_pipeline

        return build_pipeline(self.faces, InferenceEngine(1), configured(self.loaded.config.inference))

    def gallery(self, create: bool = False) -> Any:
        from gateway.lanes.faces.gallery import Gallery
        from gateway.releases.formats import FormatGate

        return Gallery(
            self.gallery_path, self.key_path, create=create, gate=FormatGate.at(self.loaded.state_dir)
        )

    def threshold(self, pipeline: Any) -> float:
        return float(self.faces.max_distance or pipeline.embedder.threshold)


def cmd_faces(args: argparse.Namespace) -> int:
    from gateway.inference.catalog import ModelError
    from gateway.lanes.faces.gallery import GalleryError
    from gateway.lanes.faces.keys import GalleryKeyError, face_paths

    loaded = read_config(args.config)
    if loaded is None:
        return 1
    gallery_path, key_path = face_paths(loaded.config.faces, loaded.state_dir)
    ctx = Context(loaded, gallery_path, key_path)
    action = {
        "init-key": _init_key,
        "enroll": _enroll,
        "tag": _tag,
        "list": _list,
        "delete": _delete,
        "verify": _verify,
        "calibrate": _calibrate,
    }[args.faces_command]
    try:
        return action(args, ctx)
    except (GalleryError, GalleryKeyError, ModelError) as exc:
        err_console.print(f"[red]{esc(exc)}[/]")
        return 1


def _init_key(args: argparse.Namespace, ctx: Context) -> int:
    from gateway.lanes.faces.keys import create_key

    created = create_key(ctx.key_path)
    if args.json:
        print_json({"key_file": str(ctx.key_path), "created": created})
    else:
        console.print(f"{'created' if created else 'kept the existing'} gallery key {esc(ctx.key_path)}")
    return 0


def parse_window(text: str) -> dict[str, Any]:
    """'mon-fri 07:00-22:00' or 'sat,sun 09:00-18:00' → a Window dict (ValueError with the fix)."""
    from gateway.core.windows import Window

    try:
        days_part, hours = text.split()
        start, end = hours.split("-")
        days: list[str] = []
        for part in days_part.lower().split(","):
            if "-" in part:
                a, b = (DAY_NAMES.index(d) for d in part.split("-"))
                days += [DAY_NAMES[i % 7] for i in range(a, b + 1 if b >= a else b + 8)]
            else:
                days.append(DAY_NAMES[DAY_NAMES.index(part)])
        window = {"days": days, "from": start, "to": end}
        Window.model_validate(window)
    except Exception:
        raise ValueError(
            f'--window {text!r}: expected e.g. "mon-fri 07:00-22:00" or "sat,sun 09:00-18:00"'
        ) from None
    return window


def _photos_from_files(paths: list[Path]) -> list[tuple[str, Any]]:
    import cv2

    out = []
    for path in paths:
        image = cv2.imread(str(path))
        out.append((str(path), image))
    return out


def _photos_from_camera(ctx: Context, camera_id: str, shots: int, pipeline: Any) -> list[tuple[str, Any]]:
    """Good frames from a camera: waits up to 30 s for `shots` frames passing the gates."""
    from drivers.camera.capture import open_capture

    cams = {s.id: s for s in ctx.loaded.config.sources if s.type == "camera"}
    if camera_id not in cams:
        raise ValueError(
            f"no camera {camera_id!r} in the config; cameras: {', '.join(sorted(cams)) or 'none'}"
        )
    cap = open_capture(cams[camera_id])
    taken: list[tuple[str, Any]] = []
    deadline = time.monotonic() + 30
    try:
        while len(taken) < shots and time.monotonic() < deadline:
            ok, image = cap.read()
            if not ok:
                break
            if pipeline.analyse(image).usable:
                taken.append((f"{camera_id} frame {len(taken) + 1}", image))
                time.sleep(0.3)  # a little apart: different expressions make better templates
    finally:
        cap.release()
    return taken


def _judge(
    image: Any, pipeline: Any, others: Any, threshold: float, args: argparse.Namespace
) -> tuple[Any, str | None]:
    """(the photo's face probe, why it is refused or None): one face, passing the gates, not
    already enrolled under another id (unless --force)."""
    if image is None:
        return None, "not a readable picture"
    probes = pipeline.analyse_all(image)
    if not probes:
        return None, "no face found"
    if len(probes) > 1:
        return None, f"{len(probes)} faces: use a photo of the resident alone"
    probe = probes[0]
    if not probe.usable:
        return probe, probe.reason()
    match = others.match(probe.vector)
    other = match.resident.id if match.resident is not None else args.resident
    if other != args.resident and match.distance <= threshold and not args.force:
        return probe, (
            f"looks like resident {other} (distance {match.distance:.2f}): already enrolled? "
            "(--force to enrol anyway)"
        )
    return probe, None


def _enroll(args: argparse.Namespace, ctx: Context) -> int:
    from rich.progress import Progress

    from gateway.lanes.faces.gallery import Resident
    from gateway.lanes.faces.match import Matcher

    if bool(args.images) == bool(args.camera):
        err_console.print("[red]give photos or --camera CAM (one of the two)[/]")
        return 2
    try:
        windows = [parse_window(w) for w in args.window]
    except ValueError as exc:
        err_console.print(f"[red]{esc(exc)}[/]")
        return 2
    known_doors = {d.id for d in ctx.loaded.config.doors}
    for door in args.door:
        if door not in known_doors:
            err_console.print(
                f"[red]--door {door!r} is not a configured door; "
                f"doors: {esc(', '.join(sorted(known_doors)) or 'none')}[/]"
            )
            return 2
    pipeline = ctx.pipeline()
    gallery = ctx.gallery(create=True)
    try:
        threshold = ctx.threshold(pipeline)
        others = Matcher(gallery.templates(pipeline.embedder.name))
        if args.camera:
            photos = _photos_from_camera(ctx, args.camera, args.shots, pipeline)
        else:
            photos = _photos_from_files(args.images)
        report: list[dict[str, Any]] = []
        vectors, qualities = [], []
        with Progress(console=err_console, transient=True, disable=args.json) as progress:
            task = progress.add_task("checking photos", total=len(photos))
            for name, image in photos:
                probe, reason = _judge(image, pipeline, others, threshold, args)
                row: dict[str, Any] = {"photo": name, "accepted": reason is None, "reason": reason or "ok"}
                if probe is not None and probe.quality is not None:
                    row.update(probe.quality.metrics)
                    if reason is None:
                        vectors.append(probe.vector)
                        qualities.append(probe.quality.metrics)
                report.append(row)
                progress.advance(task)
        count = 0
        if vectors:
            now_ms = int(time.time() * 1000)
            resident = Resident(
                args.resident, args.unit, args.consent_by, args.consent, now_ms, args.door, windows
            )
            count = gallery.enroll(resident, vectors, pipeline.embedder.name, qualities, now_ms)
    finally:
        gallery.close()
    body = {"resident_id": args.resident, "accepted": len(vectors), "templates": count, "photos": report}
    if args.json:
        print_json(body)
    else:
        t = table(f"enrolment of {esc(args.resident)}", ["photo", "result", "eyes px", "yaw", "sharpness"])
        for r in report:
            result = "[green]accepted[/]" if r["accepted"] else f"[red]rejected[/]: {esc(r['reason'])}"
            t.add_row(
                esc(r["photo"]),
                result,
                str(r.get("eye_px", "")),
                str(r.get("yaw", "")),
                str(r.get("sharpness", "")),
            )
        console.print(t)
        if vectors:
            console.print(f"{esc(args.resident)}: {len(vectors)} template(s) added, {esc(count)} in all")
        else:
            err_console.print(f"[red]{esc(args.resident)}: no usable photo, nothing enrolled[/]")
    return 0 if vectors else 1


def _tag(args: argparse.Namespace, ctx: Context) -> int:
    """Seal a resident's tag (address + bindkey) into the gallery; the running gateway listens for
    it within a second. The key is read from a file or stdin, never from the command line (ps)."""
    import sys

    from gateway.lanes.faces.tag_store import parse_bindkey, remove_tag, set_tag

    if args.remove == bool(args.address or args.bindkey_file):
        err_console.print("[red]give --address and --bindkey-file, or --remove[/]")
        return 2
    gallery = ctx.gallery()
    try:
        if args.remove:
            removed = remove_tag(gallery, args.resident_id)
            body: dict[str, Any] = {"resident_id": args.resident_id, "tag_removed": removed}
        else:
            if not (args.address and args.bindkey_file):
                err_console.print("[red]give both --address and --bindkey-file[/]")
                return 2
            path = str(args.bindkey_file)
            text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
            set_tag(gallery, args.resident_id, args.address, parse_bindkey(text), int(time.time() * 1000))
            body = {"resident_id": args.resident_id, "tag_set": True}
    except OSError as exc:
        err_console.print(f"[red]cannot read {esc(args.bindkey_file)}: {esc(exc.strerror)}[/]")
        return 1
    finally:
        gallery.close()
    if args.json:
        print_json(body)
    elif args.remove:
        console.print(f"{esc(args.resident_id)}: {'tag removed' if body['tag_removed'] else 'had no tag'}")
    else:
        console.print(f"{esc(args.resident_id)}: tag set (sealed in the gallery; face+tag doors use it)")
    return 0 if args.remove is False or body["tag_removed"] else 1


def _list(args: argparse.Namespace, ctx: Context) -> int:
    from gateway.lanes.faces.tag_store import tags

    gallery = ctx.gallery()
    try:
        residents = gallery.residents()
        with_tag = set(tags(gallery))
        by_resident = gallery.models()
        pseudonyms = {r.id: gallery.pseudonym(r.id) for r in residents}  # as events name them
    finally:
        gallery.close()
    embedder = ctx.faces.embedder
    rows = []
    for r in residents:
        models = by_resident.get(r.id, {})
        rows.append(
            {
                "resident_id": r.id,
                "pseudonym": pseudonyms[r.id],
                "unit": r.unit,
                "templates": models.get(embedder, 0),
                "other_embedders": {m: n for m, n in models.items() if m != embedder},
                "needs_reenrolment": models.get(embedder, 0) == 0,
                "doors": r.doors or "all",
                "windows": r.windows or "any time",
                "tag": r.id in with_tag,
                "consent": {
                    "by": r.consent_by,
                    "how": r.consent_how,
                    "at": dt.datetime.fromtimestamp(r.consent_at_ms / 1000).isoformat(timespec="minutes"),
                },
            }
        )
    stale = [r["resident_id"] for r in rows if r["needs_reenrolment"]]
    if args.json:
        print_json({"embedder": embedder, "residents": rows, "needs_reenrolment": stale})
        return 0
    t = table(
        f"face gallery {esc(ctx.gallery_path)} (embedder {esc(embedder)})",
        ["resident", "in events", "unit", "templates", "tag", "doors", "hours", "consent"],
    )
    for r in rows:
        doors = ", ".join(r["doors"]) if isinstance(r["doors"], list) else r["doors"]
        hours = (
            "; ".join(f"{','.join(w['days'])} {w['from']}-{w['to']}" for w in r["windows"])
            if isinstance(r["windows"], list)
            else r["windows"]
        )
        c = r["consent"]
        count = str(r["templates"])
        if r["other_embedders"]:
            other = esc(", ".join(f"{n} {m}" for m, n in r["other_embedders"].items()))
            count += f" [yellow](+{other}: unused)[/]"
        if r["needs_reenrolment"]:
            count = "[red]0: RE-ENROL[/] " + count[1:]
        consent = esc(f"{c['by']}, {c['at']}: {c['how']}")
        t.add_row(
            esc(r["resident_id"]),
            r["pseudonym"],
            esc(r["unit"]),
            count,
            "yes" if r["tag"] else "",
            esc(doors),
            esc(hours),
            consent,
        )
    console.print(t)
    if stale:
        err_console.print(
            f"[yellow]{len(stale)} resident(s) have no {esc(embedder)} template and are never recognised "
            f"until enrolled again (photos are not kept): {esc(', '.join(stale))}[/]"
        )
    return 0


def _delete(args: argparse.Namespace, ctx: Context) -> int:
    from gateway.lanes.faces.passages import delete_resident
    from gateway.storage.state import StateStore, state_path

    gallery = ctx.gallery()
    store = StateStore(state_path(ctx.loaded.state_dir))  # the resident's anti-passback record
    try:
        removed = delete_resident(gallery, store, args.resident_id)
    finally:
        gallery.close()
        store.close()
    if removed is None:
        err_console.print(
            f"[red]no resident {esc(repr(args.resident_id))} in the face gallery (`lintel faces list`)[/]"
        )
        return 1
    body = {"resident_id": args.resident_id, "templates_deleted": removed, "purged": True}
    if args.json:
        print_json(body)
    else:
        console.print(
            f"deleted {esc(args.resident_id)}: {removed} template(s) removed; database and WAL rewritten "
            "without them"
        )
    return 0


def _verify(args: argparse.Namespace, ctx: Context) -> int:
    import cv2

    from gateway.lanes.faces.decision import AMBIGUOUS, UNKNOWN, classify
    from gateway.lanes.faces.match import Matcher

    image = cv2.imread(str(args.image))
    if image is None:
        err_console.print(f"[red]{esc(args.image)} is not a readable picture[/]")
        return 1
    pipeline = ctx.pipeline()
    gallery = ctx.gallery()
    try:
        matcher = Matcher(gallery.templates(pipeline.embedder.name))
    finally:
        gallery.close()
    threshold = ctx.threshold(pipeline)
    faces = []
    for probe in pipeline.analyse_all(image):
        entry: dict[str, Any] = {
            "box": [round(v) for v in probe.face.box],
            "quality": probe.quality.metrics if probe.quality else {},
            "usable": probe.usable,
        }
        if not probe.usable:
            entry["verdict"] = f"not compared: {probe.reason()}"
        else:
            match = matcher.match(probe.vector)
            entry["closest"] = [
                {"resident_id": r.id, "unit": r.unit, "distance": round(d, 3)}
                for r, d in matcher.ranking(probe.vector)
            ]
            label = classify(match, threshold, ctx.faces.min_margin)
            if label == UNKNOWN:
                entry["verdict"] = "unknown"
            elif label == AMBIGUOUS:
                entry["verdict"] = f"ambiguous (margin {match.margin:.3f} < {ctx.faces.min_margin})"
            else:
                entry["verdict"] = f"matches {label}"
                entry["resident_id"] = label
            entry["margin"] = round(match.margin, 3) if match.second != float("inf") else None
        faces.append(entry)
    body = {
        "image": str(args.image),
        "threshold": threshold,
        "min_margin": ctx.faces.min_margin,
        "faces": faces,
    }
    if args.json:
        print_json(body)
    else:
        if not faces:
            console.print(f"{esc(args.image)}: no face found")
        for i, f in enumerate(faces, 1):
            console.print(f"face {esc(i)} at {esc(f['box'])}: [bold]{esc(f['verdict'])}[/]")
            for c in f.get("closest", []):
                mark = "≤" if c["distance"] <= threshold else ">"
                console.print(
                    f"   {c['resident_id']:<16} unit {c['unit']:<10} "
                    f"distance {c['distance']:.3f} {esc(mark)} {esc(threshold)}"
                )
    return 0 if faces else 1


def _calibrate(args: argparse.Namespace, ctx: Context) -> int:
    import cv2
    import numpy as np

    from gateway.lanes.faces import calibration as cal

    folder: Path = args.folder
    people = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    if len(people) < 2:
        err_console.print(
            f"[red]{esc(folder)}: needs one sub-folder of photos per person, at least two people[/]"
        )
        return 1
    pipeline = ctx.pipeline()
    vectors: list[tuple[str, np.ndarray]] = []
    skipped: list[dict[str, str]] = []
    for person in people:
        for path in sorted(p for p in person.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            image = cv2.imread(str(path))
            probe = pipeline.analyse(image) if image is not None else None
            if probe is None or not probe.usable:
                skipped.append({"photo": str(path), "reason": probe.reason() if probe else "unreadable"})
                continue
            vectors.append((person.name, probe.vector))
    d = cal.distances(vectors)
    if not d.genuine.size or not d.impostor.size:
        err_console.print("[red]need at least two usable photos of one person and photos of two people[/]")
        return 1
    configured = ctx.threshold(pipeline)
    templates = _gallery_size(args, ctx) * args.templates
    refused = cal.refusal(d)
    body: dict[str, Any] = {
        "people": d.people,
        "people_with_pairs": d.people_with_pairs,
        "photos": len(vectors),
        "skipped": skipped,
        "genuine_pairs": int(d.genuine.size),
        "impostor_pairs": int(d.impostor.size),
        "person_pairs": d.person_pairs,
        "genuine": _summary(d.genuine),
        "impostor": _summary(d.impostor),
        "configured": _at(d, configured, templates),
        "gallery_templates": templates,
        "target_far": args.far,
        "suggested_max_distance": None,
        "refused": refused,
    }
    if refused is None:
        threshold = cal.suggest(d, args.far)
        body["suggested_max_distance"] = round(threshold, 3)
        body["suggested"] = _at(d, threshold, templates)
    if args.plot:
        _plot(args.plot, d.genuine, d.impostor, body["suggested_max_distance"] or configured)
        body["plot"] = str(args.plot)
    if args.json:
        print_json(body)
        return 1 if refused else 0
    g, i = body["genuine"], body["impostor"]
    console.print(
        f"{len(vectors)} photos of {esc(d.people)} people ({esc(d.person_pairs)} person pairs): "
        f"{esc(d.genuine.size)} same-person pairs, {esc(d.impostor.size)} other-person pairs"
    )
    console.print(f"same person:   distance {esc(g['min'])}–{esc(g['max'])} (median {esc(g['median'])})")
    console.print(f"other people:  distance {esc(i['min'])}–{esc(i['max'])} (median {esc(i['median'])})")
    for label, key in (("configured", "configured"), ("suggested", "suggested")):
        if key in body:
            console.print(_rates_line(label, body[key], templates))
    if refused:
        err_console.print(f"[yellow]no threshold suggested: {esc(refused)}[/]")
    for s in skipped:
        err_console.print(f"[yellow]skipped {esc(s['photo'])}: {esc(s['reason'])}[/]")
    if args.plot:
        console.print(f"plot: {esc(args.plot)}")
    return 1 if refused else 0


def _gallery_size(args: argparse.Namespace, ctx: Context) -> int:
    """--gallery-size, else the residents of the configured gallery (if any), else 1000."""
    if args.gallery_size:
        return int(args.gallery_size)
    if ctx.gallery_path.exists():
        gallery = ctx.gallery()
        try:
            count = len(gallery.residents())
        finally:
            gallery.close()
        if count:
            return count
    return 1000


def _summary(values: Any) -> dict[str, float]:
    import numpy as np

    return {
        "min": round(float(values.min()), 3),
        "median": round(float(np.median(values)), 3),
        "max": round(float(values.max()), 3),
    }


def _at(d: Any, threshold: float, templates: int) -> dict[str, Any]:
    """FAR/FRR at a threshold and what the FAR (and its upper bound) means per stranger frame."""
    from gateway.lanes.faces import calibration as cal

    out = cal.rates(d, threshold)
    far_hi = out["far_ci95"][1]  # type: ignore[index]
    out["per_frame_far"] = round(cal.per_frame_far(float(out["far"]), templates), 5)  # type: ignore[arg-type]
    out["per_frame_far_upper"] = round(cal.per_frame_far(far_hi, templates), 5)
    return out


def _rates_line(label: str, r: dict[str, Any], templates: int) -> str:
    return (
        f"{label} max_distance {r['threshold']}: FAR {r['far']:.5f} "
        f"(95 % CI {r['far_ci95'][0]:.5f}–{r['far_ci95'][1]:.5f}), FRR {r['frr']:.3f} "
        f"(95 % CI {r['frr_ci95'][0]:.3f}–{r['frr_ci95'][1]:.3f}); a stranger frame against "
        f"{templates:,} templates matches someone with p ≈ {r['per_frame_far']:.4f} "
        f"(up to {r['per_frame_far_upper']:.3f})"
    )


def _plot(path: Path, genuine: Any, impostor: Any, threshold: float) -> None:
    """Two histograms (same person green, other people red) and the threshold, drawn with OpenCV."""
    import cv2
    import numpy as np

    w, h, pad = 800, 400, 40
    canvas = np.full((h, w, 3), 255, np.uint8)
    top = max(1.5, float(max(genuine.max(), impostor.max())) * 1.05)
    bins = np.linspace(0, top, 61)
    hg, _ = np.histogram(genuine, bins)
    hi, _ = np.histogram(impostor, bins)
    hg, hi = hg / max(1, hg.sum()), hi / max(1, hi.sum())
    peak = max(hg.max(), hi.max()) or 1

    def x_of(value: float) -> int:
        return int(pad + (w - 2 * pad) * value / top)

    for counts, colour, shift in ((hg, (60, 160, 60), 0), (hi, (60, 60, 200), 3)):
        for i, c in enumerate(counts):
            if c:
                y = int(h - pad - (h - 2 * pad) * c / peak)
                cv2.rectangle(
                    canvas, (x_of(bins[i]) + shift, y), (x_of(bins[i + 1]) - 3 + shift, h - pad), colour, -1
                )
    cv2.line(canvas, (pad, h - pad), (w - pad, h - pad), (0, 0, 0), 1)
    for tick in np.arange(0, top + 1e-9, 0.25):
        cv2.putText(
            canvas,
            f"{tick:.2f}",
            (x_of(tick) - 14, h - pad + 18),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4,
            (0, 0, 0),
            1,
        )
    cv2.line(canvas, (x_of(threshold), pad - 10), (x_of(threshold), h - pad), (0, 0, 0), 2)
    cv2.putText(
        canvas,
        f"max_distance {threshold:.3f}",
        (x_of(threshold) + 5, pad),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.5,
        (0, 0, 0),
        1,
    )
    cv2.putText(canvas, "same person", (pad, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (60, 160, 60), 2)
    cv2.putText(canvas, "other people", (pad + 130, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (60, 60, 200), 2)
    cv2.putText(
        canvas, "descriptor distance", (w // 2 - 70, h - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1
    )
    cv2.imwrite(str(path), canvas)
