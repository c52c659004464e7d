"""The models the configured lanes need (present, matching their pinned sha256) and the face
gallery's key (present, 32 bytes, readable by the service only)."""

from __future__ import annotations

import os
import stat

from gateway.diagnostics.context import Context
from gateway.diagnostics.report import Finding, fail, ok, warn


def check_models(ctx: Context) -> list[Finding]:
    assert ctx.loaded is not None
    config = ctx.loaded.config
    wanted: list[tuple[str, str]] = []
    if config.fire_lanes:
        wanted.append(("vision.detector", config.vision.detector))
    if config.face_access:
        wanted += [("faces.detector", config.faces.detector), ("faces.embedder", config.faces.embedder)]
    if not wanted:
        return []
    from gateway.inference.catalog import ModelError, configured

    rebuild = (
        "rebuild the models: `scripts/setup.sh` (or `.venv/bin/python models/fetch.py`) in the install folder"
    )
    try:
        models = configured(config.inference)
    except ModelError as exc:
        return [fail("models", str(exc), "check inference.manifest_dir and inference.model_dir")]
    findings: list[Finding] = []
    for key, name in wanted:
        check = f"model.{name}"
        if name not in models:
            findings.append(
                fail(check, f"{key} names {name!r}, which no manifest describes", "see `lintel models list`")
            )
            continue
        try:
            digest = models[name].verify()
        except ModelError as exc:
            findings.append(fail(check, str(exc), rebuild))
            continue
        findings.append(ok(check, f"{name} ({key}) matches its pinned sha256 {digest[:12]}"))
    return findings


def check_face_key(ctx: Context) -> list[Finding]:
    assert ctx.loaded is not None
    if not ctx.loaded.config.face_access:
        return []
    from gateway.lanes.faces.keys import KEY_BYTES, MIGRATION, key_location

    faces = ctx.loaded.config.faces
    key_file = ctx.loaded.resolve(faces.key_file) if faces.key_file else None
    path, beside = key_location(key_file, ctx.loaded.state_dir)
    check = "faces.key"
    try:
        st = path.stat()
    except PermissionError:
        return [warn(check, f"no permission to look at {path}", "run `sudo lintel doctor`")]
    except FileNotFoundError:
        return [
            fail(
                check,
                f"the face gallery key {path} is missing: face access will not start "
                "(cards and PINs still work)",
                "`sudo -u lintel lintel faces init-key` (a new key cannot read templates enrolled under "
                "an old one: re-enrol residents if the old key is lost)",
            )
        ]
    mode = stat.S_IMODE(st.st_mode)
    if mode & (0o037 if st.st_uid == 0 else 0o077):  # 0640 root:lintel is the installed mode
        return [
            fail(
                check,
                f"the face gallery key {path} is readable by others (mode {mode:o}): face access refuses it",
                f"`sudo chmod 600 {path}`",
            )
        ]
    if st.st_size != KEY_BYTES:
        return [
            fail(
                check,
                f"the face gallery key {path} has {st.st_size} bytes, not {KEY_BYTES}: not a key file",
                "restore the key from the backup; a new key (`lintel faces init-key` after moving this "
                "file away) needs every resident re-enrolled",
            )
        ]
    if not os.access(path, os.R_OK):
        return [fail(check, f"cannot read {path}", "run doctor with sudo, as the service does")]
    if beside:
        return [
            warn(
                check,
                f"the face gallery key {path} lies in the state folder beside the gallery: whoever copies "
                "that folder can read every template",
                MIGRATION.format(old=path),
            )
        ]
    return [ok(check, f"the face gallery key {path} is in place (mode {mode:o})")]
