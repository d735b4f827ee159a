"""Hardware drivers: bytes and pins, no hall rules (never imports edge)."""
