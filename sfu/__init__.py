"""ConfBridge media plane: a selective forwarding unit that moves encoded RTP, never pixels.

Ownership follows Worker → Room → Peer → Source / Slot (see `sfu.forwarding`); every access to
aiortc or aioice internals is confined to the package `sfu.rtc`.
"""
