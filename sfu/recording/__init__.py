"""Recording the programme of a room to a WebM or Matroska file, from the forwarded packets
(issue 20): `recorder` (the in-process viewer and its tracks), `programme` (what the room hands
it), `frames` (RTP → whole frames), `h264_sps` (an H.264 keyframe's size), `writer` (the
muxer's thread), `state` (the state file beside each recording), `recovery` (recordings a dead
worker left), `control` (a worker's recordings and their admin API)."""
