"""Face access: detection, alignment, embedding, an encrypted gallery, decisions, door pulses."""
