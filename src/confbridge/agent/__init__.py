"""The terminal agent: an unattended ward-hall terminal in Python (`confbridge terminal`).

It pairs once, reads its site's agenda, joins each meeting at its start (WHIP publishing the
camera and microphone, WHEP receiving the programme), rejoins with back-off after a drop,
leaves at the end, and reports a heartbeat to the control plane.
"""
