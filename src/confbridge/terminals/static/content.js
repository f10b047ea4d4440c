// Content sharing (trình chiếu) on the kiosk: showing the presentation that arrives on the
// programme's second video track, and presenting this hall's screen or a window.

import * as whip from "/static/js/whip.js";

const CONTENT_POLL_MS = 500;
// No new frame on the content track for this long: nobody shares any more.
const CONTENT_GONE_MS = 1500;
const MESSAGE_SHOWN_MS = 6000;
// A server that answers 503 with Retry-After (the control plane with no media server up, a
// media server under a join storm) is waited out as told, with jitter, and the same grant is
// offered again; for at most this long after the click, then the hall is told it failed.
const SHARE_WAIT_MAX_MS = 60000;

let contentTimer = null;

/**
 * Show the presentation of `session` (a whip.js view with `content: true`) full screen, with the
 * speaker inset, while its track has frames: the bridge sends it only while someone shares, so
 * the layout follows its decoded frames, polled from the receiver's stats.
 */
export function showContent(session, note) {
  clearInterval(contentTimer);
  const video = document.getElementById("content");
  video.srcObject = session.content;
  const [track] = session.content ? session.content.getVideoTracks() : [];
  const receiver = track && session.pc.getReceivers().find((r) => r.track === track);
  let decoded = 0;
  let lastFrameAt = 0;
  const set = (on) => {
    if ((document.body.dataset.content === "on") === on) return;
    document.body.dataset.content = on ? "on" : "off";
    if (on) video.play().catch(() => {});  // hidden until now: autoplay did not start it
    note(on ? "content_shown" : "content_hidden");
  };
  set(false);
  if (!receiver) return;
  contentTimer = setInterval(async () => {
    if (session.pc.connectionState === "closed") return clearInterval(contentTimer);
    let frames = decoded;
    (await receiver.getStats()).forEach((report) => {
      if (report.type === "inbound-rtp") frames = report.framesDecoded ?? frames;
    });
    if (frames > decoded) lastFrameAt = Date.now();
    decoded = frames;
    set(Date.now() - lastFrameAt < CONTENT_GONE_MS);
  }, CONTENT_POLL_MS);
}

/**
 * The "Trình chiếu" button: asks for a content grant (the chair site, or the site that has the
 * floor), lets the person pick a screen or a window, and presents it until they click again,
 * the browser's own "stop sharing" ends the capture, or the bridge ends it (the chair stopped
 * it, another site took over). `ctx`: the kiosk's `api`, `t`, `note`, `current()` (the meeting
 * state or null) and `relayOnly`.
 */
export function setupSharing(button, ctx) {
  let presenting = null;
  const label = () => {
    button.textContent = ctx.t(presenting ? "stop_sharing" : "share");
    button.setAttribute("aria-pressed", String(presenting !== null));
  };
  const end = async (why) => {
    const session = presenting;
    if (!session) return;
    presenting = null;
    label();
    session.stream.getTracks().forEach((track) => track.stop());
    await session.stop().catch(() => {});
    ctx.note("share_stopped", { reason: why });
  };
  button.addEventListener("click", async () => {
    if (presenting) return end("stopped here");
    const meeting = ctx.current();
    if (!meeting) return;
    button.disabled = true;  // one attempt at a time, waits included
    try {
      await share(meeting);
    } finally {
      button.disabled = false;
    }
  });
  const share = async (meeting) => {
    const giveUpAt = Date.now() + SHARE_WAIT_MAX_MS;
    let grant;
    try {
      grant = await whenServed(ctx, giveUpAt, () =>
        ctx.api("POST", `/api/v1/occurrences/${meeting.item.occurrence_id}/join`, {
          purpose: "content",
        }));
    } catch (error) {
      const shown = ctx.t(error.status === 403 ? "may_not_present" : "share_failed");
      return tell(ctx, shown, error.message);
    }
    let screen;
    try {
      screen = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
      presenting = await whenServed(ctx, giveUpAt, () =>
        whip.present(grant.whip_url, grant.token, screen, {
          rtcConfiguration: {
            iceServers: grant.ice_servers,
            iceTransportPolicy: ctx.relayOnly ? "relay" : "all",
          },
        }));
    } catch (error) {
      screen?.getTracks().forEach((track) => track.stop());
      return tell(ctx, ctx.t("share_failed"), error.message);
    }
    const session = presenting;
    screen.getVideoTracks()[0].addEventListener("ended", () => end("capture ended"));
    // The bridge closes the session when the chair stops it or another site presents.
    session.pc.addEventListener("connectionstatechange", () => {
      const state = session.pc.connectionState;
      if (presenting === session && ["disconnected", "failed", "closed"].includes(state)) {
        end(`connection ${state}`);
      }
    });
    label();
    ctx.note("share_started");
  };
  label();
}

// `call()` again while its refusal says to come back later (503 with Retry-After), after the
// wait it names plus jitter (whip.js), until `giveUpAt`; any other refusal is thrown at once.
async function whenServed(ctx, giveUpAt, call) {
  for (;;) {
    try {
      return await call();
    } catch (error) {
      const told = error.retryAfterMs ?? null;
      if (error.status !== 503 || told === null) throw error;
      const wait = whip.retryDelayMs(told);
      if (Date.now() + wait > giveUpAt) throw error;
      ctx.note("share_waiting", { retry_after_ms: told, retry_in_ms: Math.round(wait) });
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}

// `shown` on the screen, in the page's language; `detail` (the server's words) in the log.
function tell(ctx, shown, detail) {
  const box = document.getElementById("share-status");
  box.textContent = shown;
  box.hidden = false;
  setTimeout(() => (box.hidden = true), MESSAGE_SHOWN_MS);
  ctx.note("share_refused", { message: String(detail) });
}
