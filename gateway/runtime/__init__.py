"""Running the gateway: supervision, systemd integration, staged shutdown."""
