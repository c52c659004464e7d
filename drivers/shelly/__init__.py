"""Shelly Gen2 devices: a simulator of their local RPC (the relay itself is gateway.lanes.doors.shelly)."""
