"""Every use of aiortc, aioice and pylibsrtp internals in the SFU lives in this package, and
nowhere else.

aiortc is built to decode what it receives and encode what it sends; an SFU must do neither.
This package bends aiortc 1.16.0 into a packet forwarder, per object and never per class, so
ordinary aiortc peers in the same process keep their stock behaviour. By concern:

- `versions`: the aiortc/aioice versions relied upon; checked before anything else is imported.
- `ice`: host candidates (addresses, port range, announced address), consent timing, ICE
  restart in place, the pair ICE selected.
- `udpmux`: single-port mode, every peer connection of the worker on one UDP socket, routed by
  STUN username and remote address; `sendmmsg`: batched sends on that socket; `icelite`: the
  connections on it as ICE-lite agents (no checks of their own, consent by the peer's checks).
- `sdp`: what a transceiver negotiated, and the helpers that shape an answer (codecs, every
  m-line of a BUNDLE group on its transport).
- `transport`: synchronous SRTP on a DTLS transport; DTLS cipher suites for RSA peers.
- `ingest`: one publisher's receiver as a packet source (`RtpIngest`), routed by MID too.
- `egress`: one viewer's sender fed with serialized RTP (`RtpEgress`, `ParkedTrack`).
- `observe`: observation and fault injection for tests and benchmarks.

Each access to an internal carries a comment naming what it touches and why. `tests/sfu/rtc/`
asserts every name and signature relied upon, so an upgrade fails there first.
"""

from sfu.rtc import versions as versions  # the version guard runs before any other module
