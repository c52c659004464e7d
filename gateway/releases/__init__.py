"""Releases side by side, the atomic switch between them, and the probation that decides whether a
new release stays (see README "Updates and rollback").

The modules the package's maintainer scripts and the boot guard run (`layout`, `durable`, `state`,
`store`, `guard`) import only the standard library: they run under Debian's own python3 before any
venv exists, and from the last committed release when the current one cannot even import.
"""
