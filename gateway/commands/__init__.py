"""Remote commands: signed by operator keys with roles, schema-checked, replay-guarded,
rate-limited per sender, each answered with a result."""
