"""BLE door and window sensors: passive listening, our own decoders, presence, a scanner watchdog."""
