"""SIP legs: the media of a SIP call (plain RTP or SDES-SRTP) terminated next to a room.

The gateway does SIP signalling; this package answers and offers its SDP (`sdp`), owns the
call's RTP sockets (`transport`), transcodes its audio to and from the room's Opus (`audio`),
hears RFC 4733 digits (`dtmf`), joins the room as a site (`leg`), keeps the worker's legs
(`legs`) and serves the contract of `confbridge_kernel.sip_legs` (`routes`).
"""
