"""Ward-hall terminals: pairing, revocation, heartbeats and online status, the kiosk page."""
