"""`lintel doctor`'s checks: everything a technician cannot see, each answered with what to do.

A check is a function `check(ctx) -> list[Finding]`. Every finding is one line for a person: a
level (ok / warn / fail), what was found, and, unless all is well, the fix in plain words. The checks
talk to the real things (the broker, the serial ports, BlueZ, the cameras, the files) but never take
a device away from a running gateway: when the daemon runs, they read its status file and ask it
through the control socket instead (see `context.Context.daemon`).

Like the demo and the installer tools, this package sits beside the CLI and may use the drivers
(a one-request Modbus read, a camera open); the daemon never imports it.
"""
