"""BLE door and window sensors: passive listening, our own advert decoders, presence and a scanner watchdog."""
