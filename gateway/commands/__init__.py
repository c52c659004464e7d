"""Remote commands: schema-checked, allow-listed, replay-guarded, each answered with a result."""
