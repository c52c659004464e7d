"""Local alarm rules as configured data: threshold, door left open, deadband."""
