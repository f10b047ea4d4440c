"""A hall's camera and microphone as its own process, for a publisher inside a network
namespace (a lossy link, say). Same exchange as `tests.support.viewer_process`, whose
`ScreenProcess.start(..., module="tests.support.publisher_process", args=[w, h])` runs it
and does the WHIP HTTP exchange: this prints its offer as `{"offer": sdp}`, reads the answer
as `{"answer": sdp}` on stdin, and publishes a `w`×`h` camera and a tone until stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import sys

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from tests.support.peers import SizedVideoTrack, ToneTrack


async def main(width: int, height: int) -> None:
    loop = asyncio.get_running_loop()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(SizedVideoTrack(width, height))
    pc.addTrack(ToneTrack(0.3))
    await pc.setLocalDescription(await pc.createOffer())
    sys.stdout.write(json.dumps({"offer": pc.localDescription.sdp}) + "\n")
    sys.stdout.flush()
    line = await loop.run_in_executor(None, sys.stdin.readline)
    await pc.setRemoteDescription(RTCSessionDescription(json.loads(line)["answer"], "answer"))
    await loop.run_in_executor(None, sys.stdin.readline)  # EOF or any line: stop
    await pc.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
