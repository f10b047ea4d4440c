"""Recording the programme of a room to a WebM file, from the forwarded packets (issue 20):
`recorder` (the in-process viewer), `frames` (RTP → whole frames), `writer` (the muxer's
thread), `control` (a worker's recordings and their admin API)."""
