"""The media of SIP calls (room systems on plain RTP), terminated next to a room as *legs*
(`confbridge_kernel.sip_legs`): each leg is one more participant of the room, with sources and
slots like a WebRTC session's, and its video is forwarded without decoding."""
