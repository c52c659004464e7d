"""The remote `update` command: a signed request for another release, handed to the root runner.

The daemon runs as the service user in a read-only system (ProtectSystem=strict): it cannot install
anything, and should not. After the router verified the signature, the key's `update` role, the
schema and the replay guard, this handler only writes the request into the state folder
(`update-request.json`, written whole), where systemd's `lintel-update.path` starts the root
runner (`lintel update --request`, from the committed release). That runner fetches the package
(apt for a version, or the URL under `update.allowed_urls` with its sha256), checks it, installs it
beside the running release and switches on probation. The answer here is only "requested"; the
outcome reaches upstream as an event carrying this command's id: `updated`, `update_rolled_back`
or `update_failed`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gateway import __version__
from gateway.core.commands import Caller, Handler, Rejected
from gateway.releases.durable import write_file
from gateway.releases.state import PROBATION, ROLLBACK_REQUESTED, read_state
from gateway.releases.updater import REQUEST_FILE


def update_handler(state_dir: Path) -> Handler:
    async def update(args: dict[str, Any], caller: Caller) -> dict[str, Any]:
        busy = read_state(state_dir)
        if busy is not None and busy.phase in (PROBATION, ROLLBACK_REQUESTED):
            raise Rejected(
                f"busy: the update {busy.from_version} -> {busy.to_version} is still "
                f"{busy.phase.replace('_', ' ')}; send it again after its outcome"
            )
        if args.get("version") == __version__:
            raise Rejected(f"release {__version__} is already running")
        request = state_dir / REQUEST_FILE
        if request.exists():
            raise Rejected("busy: another update request is waiting for the update runner")
        command = getattr(caller, "command", None)
        body = {
            **{k: str(v) for k, v in args.items() if k in ("version", "url", "sha256")},
            "by": caller.by,
            "command_id": getattr(command, "id", None) or "",
        }
        write_file(request, json.dumps(body).encode(), 0o644)
        return {"requested": True, "running_version": __version__, **{k: body[k] for k in args if k in body}}

    return update
