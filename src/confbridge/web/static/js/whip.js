// WHIP (RFC 9725) and WHEP clients for the browser: publish a camera and microphone to the
// bridge, view the programme, leave again.
//
// Plain ES module without dependencies, so that it loads on closed networks without any CDN:
//
//   import { publish, view, stop } from "/static/js/whip.js";
//   const camera = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
//   const outgoing = await publish(grant.whip_url, grant.token, camera);
//   const programme = await view(grant.whep_url, grant.token);
//   videoElement.srcObject = programme.stream;
//   ...
//   await stop();  // or outgoing.stop(), programme.stop()
//
// Offers are sent without trickle ICE: the module waits until the browser has gathered its
// candidates (at most `options.gatheringTimeoutMs`) and sends them all in the offer. The
// bridge's answer carries all of its own candidates, so no PATCH is ever needed. For the same
// reason the ICE servers a WHIP server may list in `Link` headers come too late to be used;
// give STUN/TURN servers in `options.rtcConfiguration` instead.
//
// Content sharing (trình chiếu): `present(grant.whip_url, grant.token, screen)` with a grant
// asked for with `{"purpose": "content"}` publishes a screen, a window or slides drawn on a
// canvas; `view(url, token, { content: true })` adds a second video track to the programme,
// `session.content`, which carries the presentation while someone shares (no frames otherwise).
//
// The chair's gallery (điểm danh): `viewGallery(grant.whep_url, grant.token, 25)` with a grant
// asked for with `{"purpose": "gallery"}` receives a preview track (one hall's camera, large)
// and 25 tile tracks (halls' thumbnails); `session.layout({tiles: [siteId, ...], preview})`
// points them at halls, without renegotiating.
//
// Reconnecting after a network drop is the caller's job: watch `session.pc.connectionState`,
// and on "failed" stop() the session and publish or view again. So is waiting when a media
// server under a join storm answers 503 with Retry-After (`error.busy`): try again with the
// same grant after `retryDelayMs(error.retryAfterMs)`.

const SDP = "application/sdp";

/** Longest wait for ICE gathering before the offer is sent with the candidates found so far. */
export const GATHERING_TIMEOUT_MS = 5000;

/** Longest wait for the bridge to answer a request; then the bridge counts as unreachable. */
const REQUEST_TIMEOUT_MS = 10000;

/** Reasons are shown to people on a kiosk screen and in logs: keep them to one short line. */
const MAX_REASON_CHARS = 200;

/** A Retry-After longer than this is taken as this (a misconfigured server must not park a hall). */
export const RETRY_AFTER_MAX_S = 300;

/** Sessions started by this module and not stopped yet; `stop()` without argument ends them. */
const sessions = new Set();

/**
 * A failed WHIP/WHEP request. `status` is the HTTP status (0 when the server could not be
 * reached), `reason` the first line of the server's answer (or its JSON `detail`), e.g.
 * "unsupported video codec: this bridge takes video/VP8". `retryAfterMs` is the server's
 * Retry-After in milliseconds, or null: a 503 with it means the media server is admitting
 * other halls just now (a join storm) and asks this one to come back then (`busy`).
 */
export class WhipError extends Error {
  constructor(status, reason, url, retryAfterMs = null) {
    super(status ? `${status}: ${reason}` : reason);
    this.name = "WhipError";
    this.status = status;
    this.reason = reason;
    this.url = url;
    this.retryAfterMs = retryAfterMs;
  }

  /** The media server asked to come back later: a wait, not a failure. */
  get busy() {
    return this.status === 503 && this.retryAfterMs !== null;
  }
}

/** `Retry-After` in seconds (the delay form; an HTTP date is ignored) as milliseconds, or null. */
export function retryAfterMs(response) {
  const value = Number.parseFloat(response.headers.get("Retry-After") ?? "");
  return Number.isFinite(value) && value >= 0 ? Math.min(value, RETRY_AFTER_MAX_S) * 1000 : null;
}

/**
 * How long to wait after a refusal that said Retry-After: at least that long, plus up to 20 %
 * and 200 ms, so that the halls a server turned away together do not come back together.
 */
export function retryDelayMs(retryAfter) {
  return retryAfter * (1 + 0.2 * Math.random()) + 200 * Math.random();
}

/**
 * One WHIP or WHEP session: the peer connection and the resource the server created for it.
 * `stream` is the received MediaStream of a WHEP session, or the published one of a WHIP session.
 */
export class Session {
  constructor(pc, resourceUrl, token, stream) {
    this.pc = pc;
    this.resourceUrl = resourceUrl;
    this.token = token;
    this.stream = stream;
    /** The presentation's MediaStream (a view with `content: true`), else null. */
    this.content = null;
  }

  /**
   * Leave: DELETE the resource on the server, then close the peer connection. The published
   * stream's tracks are left running; they belong to the caller (a preview may still show them).
   * Safe to call more than once. The connection is closed even when the DELETE fails; the
   * failure is then reported (WhipError), except 404: the server had already ended the session.
   */
  async stop() {
    if (!sessions.delete(this)) {
      return;
    }
    // DELETE first: the bridge then records a deliberate leave, not a dropped connection.
    try {
      const response = await request("DELETE", this.resourceUrl, this.token);
      if (!response.ok && response.status !== 404) {
        throw await errorFrom(response, this.resourceUrl);
      }
    } finally {
      this.pc.close();
    }
  }
}

/**
 * Publish `stream` (camera and microphone) with WHIP at `url`, authorised by the join grant
 * `token`. Resolves once the server has answered; `session.pc.connectionState` then tells when
 * media flows. Rejects with a WhipError if the server refuses the offer.
 *
 * Options (also for `view`): `rtcConfiguration`, given to RTCPeerConnection (e.g. iceServers
 * for a TURN relay); `gatheringTimeoutMs`, the longest wait for ICE gathering. Publishing only:
 * `thumbnail`, also send the camera's small layer (about 320 px wide, 15 fps, 200 kbit/s).
 */
export async function publish(url, token, stream, options = {}) {
  const pc = new RTCPeerConnection(options.rtcConfiguration);
  try {
    for (const track of stream.getTracks()) {
      // sendonly: the bridge never sends media back on a WHIP session.
      pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
    }
    const camera = stream.getVideoTracks()[0];
    if (options.thumbnail && camera) {
      addThumbnail(pc, camera);
    }
    return await negotiate(pc, url, token, stream, options);
  } catch (error) {
    pc.close();
    throw error;
  }
}

/** Width of the camera's thumbnail; with its frame rate and bitrate, what the bridge expects. */
export const THUMBNAIL_WIDTH = 320;
const THUMBNAIL_MAX_FRAMERATE = 15;
const THUMBNAIL_MAX_BITRATE = 200000;

// The camera's small layer: a second video m-line after the others, on a clone of the camera
// track scaled down by the encoder (the bridge sends it to viewers on a poor link, and takes
// the second video m-line of a WHIP offer as the first one's thumbnail). A clone, so that the
// two senders' encodings stay independent.
function addThumbnail(pc, camera) {
  const width = camera.getSettings().width || 640;
  pc.addTransceiver(camera.clone(), {
    direction: "sendonly",
    sendEncodings: [
      {
        scaleResolutionDownBy: Math.max(1, width / THUMBNAIL_WIDTH),
        maxFramerate: THUMBNAIL_MAX_FRAMERATE,
        maxBitrate: THUMBNAIL_MAX_BITRATE,
      },
    ],
  });
}

/**
 * Publish a presentation (the one video track of `stream`: a screen, a window, a canvas) with
 * WHIP at `url`, authorised by a content grant. The track is hinted as "detail", so the
 * browser keeps text sharp rather than motion smooth.
 */
export async function present(url, token, stream, options = {}) {
  const [track] = stream.getVideoTracks();
  if (!track) {
    throw new WhipError(0, "nothing to present: the stream has no video track", url);
  }
  track.contentHint = "detail";
  return publish(url, token, new MediaStream([track]), options);
}

/**
 * View the programme with WHEP at `url`: one video and one audio track, whoever holds the
 * floor (the bridge switches the source without renegotiating). Resolves to a Session whose
 * `stream` can be given to a <video> element's srcObject right away; frames arrive once
 * `session.pc` is connected. With `options.content`, a second video track carries the
 * presentation while someone shares: `session.content`.
 */
export async function view(url, token, options = {}) {
  const pc = new RTCPeerConnection(options.rtcConfiguration);
  try {
    const video = pc.addTransceiver("video", { direction: "recvonly" });
    const audio = pc.addTransceiver("audio", { direction: "recvonly" });
    // The bridge takes a viewer's second video m-line as the content track (sfu.content).
    const content = options.content ? pc.addTransceiver("video", { direction: "recvonly" }) : null;
    // The receivers' tracks exist from the start; no need to wait for "track" events.
    const stream = new MediaStream([video.receiver.track, audio.receiver.track]);
    const session = await negotiate(pc, url, token, stream, options);
    if (content) {
      session.content = new MediaStream([content.receiver.track]);
    }
    return session;
  } catch (error) {
    pc.close();
    throw error;
  }
}

/**
 * View the halls' gallery with WHEP at `url` (a gallery grant): the first video track is the
 * preview (`session.preview`, one hall's camera), then `tiles` tracks of halls' thumbnails
 * (`session.tiles`, one MediaStream each). Nothing is shown until `session.layout()` says
 * which hall goes where; it resolves to what the bridge shows in each (`{tiles: [{site_id,
 * live}], preview: {site_id, live}}`).
 */
export async function viewGallery(url, token, tiles, options = {}) {
  const pc = new RTCPeerConnection(options.rtcConfiguration);
  try {
    const videos = [];
    for (let index = 0; index <= tiles; index += 1) {
      const transceiver = pc.addTransceiver("video", { direction: "recvonly" });
      onlyBridgeCodecs(transceiver);
      videos.push(transceiver);
    }
    const [preview, ...rest] = videos.map((t) => new MediaStream([t.receiver.track]));
    const session = await negotiate(pc, url, token, preview, options);
    session.preview = preview;
    session.tiles = rest;
    session.layout = (layout) => pointGallery(session, layout);
    return session;
  } catch (error) {
    pc.close();
    throw error;
  }
}

// Only the formats a bridge forwards (VP8; H.264 constrained baseline, packetization mode 1):
// with every codec Chromium knows, 26 video m-lines make a 130 KB offer, with these 40 KB.
function onlyBridgeCodecs(transceiver) {
  const capabilities = RTCRtpReceiver.getCapabilities?.("video");
  if (!capabilities || !transceiver.setCodecPreferences) {
    return;
  }
  const wanted = (codec) => {
    const mime = codec.mimeType.toLowerCase();
    const fmtp = codec.sdpFmtpLine ?? "";
    return (
      mime === "video/vp8" ||
      mime === "video/rtx" ||
      (mime === "video/h264" &&
        fmtp.includes("profile-level-id=42e01f") &&
        fmtp.includes("packetization-mode=1"))
    );
  };
  const codecs = capabilities.codecs.filter(wanted);
  if (codecs.length) {
    transceiver.setCodecPreferences(codecs);
  }
}

async function pointGallery(session, layout) {
  const url = `${session.resourceUrl}/layout`;
  let response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: { Authorization: `Bearer ${session.token}`, "Content-Type": "application/json" },
      body: JSON.stringify(layout),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (error) {
    throw new WhipError(0, `cannot reach the bridge: ${error.message}`, url);
  }
  if (!response.ok) {
    throw await errorFrom(response, url);
  }
  return response.json();
}

/** Stop `session`, or every session this module started when called without argument. */
export async function stop(session) {
  const targets = session ? [session] : [...sessions];
  const results = await Promise.allSettled(targets.map((s) => s.stop()));
  const failed = results.find((r) => r.status === "rejected");
  if (failed) {
    throw failed.reason;
  }
}

// Offer/answer with the server: POST the complete offer, apply the 201's answer.
async function negotiate(pc, url, token, stream, options) {
  await pc.setLocalDescription(await pc.createOffer());
  await gatheringComplete(pc, options.gatheringTimeoutMs ?? GATHERING_TIMEOUT_MS);
  const response = await request("POST", url, token, pc.localDescription.sdp);
  if (response.status !== 201) {
    throw await errorFrom(response, url);
  }
  const location = response.headers.get("Location");
  if (!location) {
    // Without it the session could never be ended; the server must expose the header (CORS).
    throw new WhipError(response.status, "the answer has no Location header", url);
  }
  const resourceUrl = new URL(location, url).href;
  try {
    await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
  } catch (error) {
    // The bridge made a session this browser cannot use: end it there too, without waiting.
    request("DELETE", resourceUrl, token).catch(() => {});
    throw error;
  }
  const session = new Session(pc, resourceUrl, token, stream);
  sessions.add(session);
  return session;
}

// Resolves when ICE gathering has completed, or after `timeoutMs` with what was gathered.
function gatheringComplete(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") {
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", onChange);
      resolve();
    };
    const onChange = () => {
      if (pc.iceGatheringState === "complete") {
        done();
      }
    };
    const timer = setTimeout(done, timeoutMs);
    pc.addEventListener("icegatheringstatechange", onChange);
  });
}

// fetch with the grant; a network failure or timeout becomes a WhipError with status 0.
async function request(method, url, token, body = null) {
  const init = {
    method,
    headers: { Authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  };
  if (body !== null) {
    init.headers["Content-Type"] = SDP;
    init.body = body;
  }
  try {
    return await fetch(url, init);
  } catch (error) {
    throw new WhipError(0, `cannot reach the bridge: ${error.message}`, url);
  }
}

async function errorFrom(response, url) {
  let text = "";
  try {
    text = await response.text();
  } catch {
    // The status alone still says what happened.
  }
  let line = text.split("\n", 1)[0].trim();
  if ((response.headers.get("Content-Type") || "").startsWith("application/json")) {
    try {
      line = String(JSON.parse(text).detail || line);
    } catch {
      // not JSON after all: its first line
    }
  }
  const reason = line.slice(0, MAX_REASON_CHARS) || response.statusText || "request failed";
  return new WhipError(response.status, reason, url, retryAfterMs(response));
}
