// The ward hall's kiosk: pairs once, shows the site, the clock, the agenda and a countdown,
// joins each meeting at its start (WHIP + WHEP with the join grant), rejoins with back-off after
// a drop or before the grant expires, stays while the meeting runs over or is extended, leaves
// when it ends (showing that it ended), and reports a heartbeat.
//
// URL parameters: `code` (pair with this code, e.g. from a QR code), `lang=en`, `relay=1`
// (TURN relay candidates only), `agenda_s` (how often the agenda is read, default 30).
//
// On a hall's screen kept by the agent (`confbridge terminal --screen`), the agent puts the
// token in local storage with MANAGED_KEY = "agent": the page then sends no heartbeats (the
// agent reports what the page says), hides what needs a hand on it (self-test, buttons) and
// keeps the display awake.

import * as whip from "/static/js/whip.js";
import { setupSharing, showContent } from "/terminal/content.js";
import { countdown } from "/terminal/countdown.js";
import { followDocuments, setupDocuments, stopDocuments } from "/terminal/documents.js";
import { followRecord, stopRecord } from "/terminal/record.js";
import { showRecording } from "/terminal/recording.js";
import { camera, openCamera, selfTest } from "/terminal/selftest.js";
import { WORDS } from "/terminal/words.js";

const TOKEN_KEY = "confbridge.terminal.token";
const MANAGED_KEY = "confbridge.terminal.managed_by";
const IN_PERSON = "in_person";
const BACKOFF_INITIAL_MS = 1000;
const BACKOFF_MAX_MS = 8000;
// A grant is renewed this long before it expires.
const GRANT_RENEW_MARGIN_MS = 120000;
// A connection "disconnected" for this long counts as lost (browsers may recover by themselves).
const DISCONNECTED_GRACE_MS = 3000;
const FLOOR_POLL_MS = 2000;
// "The meeting has ended" stays on the screen this long (or until the next meeting starts).
const ENDED_SHOWN_MS = 15 * 60 * 1000;
// Without a new frame for this long the programme shows no picture (the hall speaks alone).
const PICTURE_STALE_MS = 2000;
const TZ = "Asia/Ho_Chi_Minh";

const params = new URLSearchParams(location.search);
const lang = params.get("lang") === "en" ? "en" : "vi";
const t = (key) => WORDS[lang][key] ?? WORDS.vi[key] ?? key;
const $ = (id) => document.getElementById(id);
const relayOnly = params.get("relay") === "1";
const agendaIntervalMs = Math.max(1, Number(params.get("agenda_s") || 30)) * 1000;
const managed = localStorage.getItem(MANAGED_KEY) === "agent";

// The page's Content-Security-Policy lists the media servers known when it loaded. A node
// registered later is refused (connect-src): load the page again, which lists it, at most
// once every few minutes so that a lasting refusal cannot make the kiosk reload in a loop.
const CSP_RELOAD_KEY = "confbridge.terminal.csp_reload_at";
const CSP_RELOAD_MIN_MS = 300000;
document.addEventListener("securitypolicyviolation", (event) => {
  if (!event.effectiveDirective.startsWith("connect-src")) return;
  const last = Number(sessionStorage.getItem(CSP_RELOAD_KEY) || 0);
  if (Date.now() - last < CSP_RELOAD_MIN_MS) return;
  sessionStorage.setItem(CSP_RELOAD_KEY, String(Date.now()));
  setTimeout(() => location.reload(), 2000);
});

// What tests and IT staff can read from the page (also in document.body.dataset.state).
const kiosk = (window.kiosk = {
  state: "starting", joins: 0, lastError: null, occurrenceId: null, log: [], devices: null,
  stopped: false,
  // The agent calls this before it closes the window (systemd stops it): the page leaves its
  // meeting on purpose (WHIP/WHEP DELETE) and joins nothing more.
  stop: async () => {
    kiosk.stopped = true;
    await leave();
  },
});

// States in which the kiosk is in (or on its way into) a meeting: the idle screen's button
// for the next meeting's documents gives way to the meeting's own.
const ATTENDING = new Set(["joining", "reconnecting", "waiting", "in_meeting"]);

function setState(state) {
  kiosk.state = state;
  document.body.dataset.state = state;
  if (ATTENDING.has(state)) $("next-documents").hidden = true;
}

function note(event, detail = {}) {
  const entry = { at: new Date().toISOString(), event, ...detail };
  kiosk.log.push(entry);
  console.info(`kiosk: ${event}`, JSON.stringify(detail));
}

// `message` (the detail, for IT staff) goes to the heartbeat; the screen shows `shown`, in the
// page's language, never a server's English detail.
function fail(message, shown = message) {
  kiosk.lastError = String(message).slice(0, 500);
  $("status").textContent = shown;
  note("error", { message: kiosk.lastError });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class ApiError extends Error {
  // `retryAfterMs`: the server's Retry-After (503: no media server up just now), or null.
  constructor(status, detail, retryAfterMs = null, data = {}) {
    super(`${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
    this.retryAfterMs = retryAfterMs;
    this.data = data;
  }
}

// The wait before the next join: what the control plane or a media server asked for
// (Retry-After), plus up to 20 % so that the halls it turned away do not all come back at
// once; else the capped back-off.
function retryDelayMs(error, backoffMs) {
  if ((error instanceof ApiError || error instanceof whip.WhipError) && error.retryAfterMs !== null) {
    return whip.retryDelayMs(error.retryAfterMs);
  }
  return backoffMs * (0.8 + 0.4 * Math.random());
}

async function api(method, path, body) {
  const headers = {};
  const token = localStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10000),
    });
  } catch (error) {
    throw new ApiError(0, `cannot reach the server: ${error.message}`);
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    if (response.status === 401 && token && !path.endsWith("/pair")) revoked();
    throw new ApiError(
      response.status, data.detail || response.statusText, whip.retryAfterMs(response), data,
    );
  }
  return data;
}

function revoked() {
  localStorage.removeItem(TOKEN_KEY);
  leave().catch(() => {});
  showPairing();
  fail(t("revoked"));
}

// --- words, clock ---------------------------------------------------------------------------

function translate() {
  document.documentElement.lang = lang;
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
}

const clockFormat = new Intl.DateTimeFormat("vi-VN", {
  hour: "2-digit", minute: "2-digit", second: "2-digit", timeZone: TZ, hour12: false,
});
const locale = lang === "en" ? "en-GB" : "vi-VN";
const whenFormat = new Intl.DateTimeFormat(locale, {
  weekday: "short", day: "2-digit", month: "2-digit", hour: "2-digit", minute: "2-digit",
  timeZone: TZ, hour12: false,
});
// "Thứ Sáu, 4 tháng 12, 2026" under the clock
const dateFormat = new Intl.DateTimeFormat(locale, {
  weekday: "long", day: "numeric", month: "long", year: "numeric", timeZone: TZ,
});
const shortClockFormat = new Intl.DateTimeFormat("vi-VN", {
  hour: "2-digit", minute: "2-digit", timeZone: TZ, hour12: false,
});

// --- pairing ----------------------------------------------------------------------------------

function showPairing() {
  setState("unpaired");
  $("pairing").hidden = false;
  for (const id of ["next", "agenda-panel", "selftest"]) $(id).hidden = true;
}

// What the screen says when pairing failed (the server's detail goes to the heartbeat).
function pairShown(error) {
  if (error.status === 429) return t("pair_wait");
  return error.status ? t("pair_failed") : t("server_unreachable");
}

async function pair(code) {
  const answer = await api("POST", "/api/v1/terminals/pair", { code });
  localStorage.setItem(TOKEN_KEY, answer.token);
  note("paired", { terminal_id: answer.terminal_id, site_id: answer.site_id });
  $("status").textContent = t("paired");
}

// --- agenda and schedule ------------------------------------------------------------------

let agenda = [];
let heartbeatMs = Number(document.body.dataset.heartbeatIntervalS || 30) * 1000;

async function refreshAgenda() {
  const data = await api("GET", "/api/v1/terminals/me/agenda");
  $("site").textContent = data.site_name;
  agenda = data.items
    .filter((item) => item.mode !== IN_PERSON)
    .map((item) => ({
      ...item, start: Date.parse(item.start_at), end: Date.parse(item.end_at),
      // the meeting may run over its end until then (unless it is extended or ended)
      close: Date.parse(item.closes_at ?? item.end_at),
    }));
  const list = $("agenda");
  list.replaceChildren(
    ...agenda.slice(0, 6).map((item) => {
      const li = document.createElement("li");
      const time = document.createElement("time");
      time.dateTime = item.start_at;
      time.textContent = whenFormat.format(item.start);
      li.append(time, document.createTextNode(` ${item.title}`));
      li.dataset.occurrenceId = item.occurrence_id;
      return li;
    }),
  );
}

// The meeting on now; one running over its end gives way to the next that starts.
function current(now) {
  return agenda.find((item) => item.start <= now && now < item.end)
    || agenda.find((item) => item.start <= now && now < item.close) || null;
}

// What the floor poll last said of each meeting's end: {end, close, ended} by occurrence id.
const told = new Map();

function tick() {
  const now = Date.now();
  $("clock").textContent = clockFormat.format(now);
  $("date").textContent = dateFormat.format(now);
  $("programme-clock").textContent = shortClockFormat.format(now);
  if (kiosk.state === "ended" && (now >= endedUntil || current(now))) {
    $("ended").hidden = true;
    setState("idle");
  }
  const coming = agenda.find((item) => item.end > now);
  $("next-title").textContent = coming ? coming.title : t("no_meeting");
  // its documents may be read before it starts (documents.js)
  $("next-documents").hidden =
    !coming || managed || meeting !== null || ATTENDING.has(kiosk.state);
  $("next-documents").dataset.occurrenceId = coming ? coming.occurrence_id : "";
  $("countdown").textContent = !coming ? "" : coming.start > now
    ? `${t("starts_in")} ${countdown(coming.start - now, WORDS[lang])}` : t("in_progress");
}

// --- the programme on the screen -----------------------------------------------------------

// Plays `stream` (null: none) with sound. Where the browser refuses sound without a click
// (started without --autoplay-policy=no-user-gesture-required) the picture plays muted
// rather than not at all: a hall's screen is never left black.
function showProgramme(stream) {
  const video = $("programme");
  video.srcObject = stream;
  if (!stream) return;
  video.muted = false;
  if (!$("speaker").textContent) $("speaker").textContent = t("no_speaker");
  video.play().catch(() => {
    video.muted = true;
    note("autoplay_muted");
    video.play().catch(() => {});
  });
}

// The screen stays lit between meetings (a playing video already holds it during one); the
// lock is taken again when the page is shown again, which releases it.
let wakeLock = null;
async function keepAwake() {
  if (!("wakeLock" in navigator)) return;
  try {
    if (!wakeLock || wakeLock.released) wakeLock = await navigator.wakeLock.request("screen");
  } catch (error) {
    note("wake_lock_refused", { message: error.message });
  }
}
document.addEventListener("visibilitychange", () => {
  if (managed && document.visibilityState === "visible") keepAwake();
});

// --- media: self-test, meeting ------------------------------------------------------------

let meeting = null;  // { item, grant, outgoing, programme, lost, lostNode, joinedAt }
let handRaised = false;
// A floor answer asked for before the last click on the hand button is stale for the hand.
let handClickedAt = 0;

// `nodeId`: the media server of this session, reported if it is the one lost first.
function watch(session, state, nodeId) {
  let timer = null;
  const lose = (reason) => {
    if (!state.lost) state.lostNode = nodeId;
    state.lost = reason;
  };
  session.pc.addEventListener("connectionstatechange", () => {
    const s = session.pc.connectionState;
    if (s === "failed" || s === "closed") {
      lose(`connection ${s}`);
    } else if (s === "disconnected") {
      clearTimeout(timer);
      timer = setTimeout(() => {
        if (session.pc.connectionState === "disconnected") lose("connection disconnected");
      }, DISCONNECTED_GRACE_MS);
    }
  });
}

// A join grant; `lostNode`: the media server of a session that was lost, so that the control
// plane moves the room at once if that server is dead.
function askGrant(item, lostNode) {
  return api(
    "POST",
    `/api/v1/occurrences/${item.occurrence_id}/join`,
    lostNode ? { failed_node_id: lostNode } : undefined,
  );
}

async function join(item, grant) {
  setState(kiosk.joins ? "reconnecting" : "joining");
  $("status").textContent = t("joining");
  const options = {
    rtcConfiguration: { iceServers: grant.ice_servers, iceTransportPolicy: relayOnly ? "relay" : "all" },
  };
  const stream = await openCamera();
  const state = { item, grant, lost: null, joinedAt: Date.now() };
  // with the camera's thumbnail: what viewers on a poor link get of this hall
  state.outgoing = await whip.publish(grant.whip_url, grant.token, stream, { ...options, thumbnail: true });
  try {
    state.programme = await whip.view(grant.whep_url, grant.token, { ...options, content: true });
  } catch (error) {
    await state.outgoing.stop().catch(() => {});
    throw error;
  }
  watch(state.outgoing, state, grant.node_id);
  watch(state.programme, state, grant.viewing_node_id || grant.node_id);
  showProgramme(state.programme.stream);
  showContent(state.programme, note);
  const previous = meeting;
  meeting = state;
  if (previous) await stopSessions(previous);
  kiosk.joins += 1;
  kiosk.occurrenceId = item.occurrence_id;
  followRecord(item.occurrence_id, api);
  followDocuments(item.occurrence_id);
  kiosk.lastError = null;
  $("status").textContent = "";
  setState("in_meeting");
  note("joined", { occurrence_id: item.occurrence_id, role: grant.role, joins: kiosk.joins });
  beatNow();
  return state;
}

async function stopSessions(state) {
  await Promise.allSettled([state.outgoing?.stop(), state.programme?.stop()]);
}

async function leave() {
  if (!meeting) return;
  const state = meeting;
  meeting = null;
  showHallState(false);
  await stopSessions(state);
  kiosk.occurrenceId = null;
  stopRecord();
  showRecording(false);
  stopDocuments();
  showProgramme(null);
  note("left", { occurrence_id: state.item.occurrence_id });
  beatNow();
}

// Attend `item` until its end, rejoining after a drop (capped exponential back-off) and before
// the grant expires.
async function attend(item) {
  let delay = BACKOFF_INITIAL_MS;
  let lostNode = null;
  // kept while a media server asks the hall to wait its turn (a join storm)
  let grant = null;
  let nextAgendaAt = Date.now() + agendaIntervalMs;
  while (Date.now() < item.close && localStorage.getItem(TOKEN_KEY) && !kiosk.stopped) {
    const news = told.get(item.occurrence_id);
    if (news) {
      if (news.ended) break;  // ended by the chair or the secretariat
      Object.assign(item, { end: news.end, close: news.close });  // extended
    }
    if (Date.now() >= nextAgendaAt) {
      nextAgendaAt = Date.now() + agendaIntervalMs;
      await refreshAgenda().catch(() => {});
      const fresh = agenda.find((a) => a.occurrence_id === item.occurrence_id);
      if (!fresh) break;  // cancelled or ended
      item = fresh;
      const next = current(Date.now());
      if (next && next.occurrence_id !== item.occurrence_id) break;  // running over into the next
    }
    const renew = meeting && Date.parse(meeting.grant.expires_at) - Date.now() < GRANT_RENEW_MARGIN_MS;
    if (!meeting || meeting.lost || renew) {
      if (meeting?.lost) {
        note("lost", { occurrence_id: item.occurrence_id, reason: meeting.lost });
        setState("reconnecting");
        const dead = meeting;
        lostNode = dead.lostNode || null;
        meeting = null;
        stopSessions(dead).catch(() => {});
      }
      try {
        if (!grant || Date.parse(grant.expires_at) - Date.now() < GRANT_RENEW_MARGIN_MS) {
          grant = await askGrant(item, lostNode);
        }
        await join(item, grant);
        grant = null;
        lostNode = null;
        delay = BACKOFF_INITIAL_MS;
      } catch (error) {
        if (error instanceof ApiError && error.status === 409 && error.data.closed_at) break;  // ended
        if (error instanceof whip.WhipError && error.busy) {
          // Not a failure: the media server admits halls at the pace it can take. The hall
          // sees that it waits its turn; IT staff see no error.
          const wait = retryDelayMs(error, delay);
          setState("waiting");
          $("status").textContent = t("waiting_turn");
          note("waiting", {
            occurrence_id: item.occurrence_id, retry_in_ms: Math.round(wait),
            retry_after_ms: error.retryAfterMs,
          });
          await sleep(wait);
          continue;
        }
        grant = null;
        fail(`occurrence ${item.occurrence_id}: ${error.message}`, t("join_failed"));
        if (error instanceof ApiError && error.status === 401) return;
        const wait = retryDelayMs(error, delay);
        const told = (error instanceof ApiError || error instanceof whip.WhipError)
          && error.retryAfterMs !== null;
        if (!told) delay = Math.min(delay * 2, BACKOFF_MAX_MS);
        note("retry", {
          occurrence_id: item.occurrence_id, retry_in_ms: Math.round(wait),
          retry_after_ms: told ? error.retryAfterMs : null,
        });
        await sleep(wait);
        continue;
      }
    }
    await sleep(250);
  }
  await leave();
  // over (its time, ended now, cancelled): the hall sees that it ended, then the idle screen
  if (kiosk.stopped || !localStorage.getItem(TOKEN_KEY)) setState("idle");
  else showEnded(item);
}

// After a meeting: what ended and when, until the next one comes (see tick).
let endedUntil = 0;
function showEnded(item) {
  endedUntil = Date.now() + ENDED_SHOWN_MS;
  $("ended-title").textContent = item.title;
  $("ended-at").textContent = `${t("ended_at")} ${shortClockFormat.format(Math.min(item.end, Date.now()))}`;
  $("ended").hidden = false;
  setState("ended");
  note("ended", { occurrence_id: item.occurrence_id });
}

async function schedule() {
  let nextAgendaAt = 0;
  for (;;) {
    if (!localStorage.getItem(TOKEN_KEY) || kiosk.stopped) return;
    if (Date.now() >= nextAgendaAt) {
      try {
        await refreshAgenda();
        nextAgendaAt = Date.now() + agendaIntervalMs;
        if ($("status").textContent === t("server_unreachable")) $("status").textContent = "";
      } catch (error) {
        fail(error.message, t("server_unreachable"));
        nextAgendaAt = Date.now() + BACKOFF_MAX_MS;
      }
    }
    const item = current(Date.now());
    if (item) {
      await attend(item);
      nextAgendaAt = 0;
      continue;
    }
    await sleep(250);
  }
}

// --- heartbeat, floor -----------------------------------------------------------------------

async function devices() {
  try {
    const found = await navigator.mediaDevices.enumerateDevices();
    return {
      camera: found.some((d) => d.kind === "videoinput"),
      microphone: found.some((d) => d.kind === "audioinput"),
    };
  } catch {
    return { camera: false, microphone: false };
  }
}

// Wakes the heartbeat loop early: IT staff see a join or a leave at once.
let beatNow = () => {};

// On a screen kept by the agent the agent reports (with what `window.kiosk` says): the page
// only keeps `kiosk.devices` current.
async function heartbeats() {
  for (;;) {
    if (!localStorage.getItem(TOKEN_KEY)) return;
    kiosk.devices = await devices();
    try {
      if (!managed) {
        await api("POST", "/api/v1/terminals/me/heartbeat", {
          kind: "kiosk",
          version: document.body.dataset.version || "",
          ...kiosk.devices,
          occurrence_id: kiosk.occurrenceId,
          last_error: kiosk.lastError,
        });
      }
    } catch (error) {
      if (error.status === 401) return;
    }
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, heartbeatMs);
      beatNow = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

async function floorWatch() {
  for (;;) {
    await sleep(FLOOR_POLL_MS);
    if (!meeting) continue;
    try {
      const askedAt = Date.now();
      const floor = await api(
        "GET", `/api/v1/terminals/me/floor?occurrence_id=${meeting.item.occurrence_id}`,
      );
      $("speaker").textContent = floor.speaker_site_name
        ? `${t("speaking")}: ${floor.speaker_site_name}` : t("no_speaker");
      if (askedAt > handClickedAt) {
        handRaised = floor.hand_raised;
        $("hand").setAttribute("aria-pressed", String(handRaised));
        $("hand").textContent = t(handRaised ? "lower_hand" : "raise_hand");
      }
      if (floor.closes_at) {
        told.set(floor.occurrence_id, {
          end: Date.parse(floor.end_at), close: Date.parse(floor.closes_at), ended: floor.ended,
        });
      }
      $("mic").disabled = floor.muted;
      mutedByChair = floor.muted;
      if (floor.muted) $("mic").textContent = t("muted_by_chair");
      else setMicLabel();
      showHallState(floor.speaker_site_id != null && floor.speaker_site_id === kiosk.siteId);
      showRecording(meeting && floor.recording, lang);
    } catch {
      // the next poll may succeed; the programme goes on regardless
    }
  }
}

function setMicLabel() {
  const enabled = camera?.getAudioTracks().some((track) => track.enabled) ?? true;
  $("mic").textContent = t(enabled ? "mute" : "unmute");
  $("mic").setAttribute("aria-pressed", String(!enabled));
  document.body.dataset.muted = String(!enabled || mutedByChair);
}

// This hall's own state on its screen: it has the floor (and then sees itself, see kiosk.css),
// its microphone is off (by the chair, or by its own button).
let mutedByChair = false;
function showHallState(speaking) {
  const enabled = camera?.getAudioTracks().some((track) => track.enabled) ?? true;
  document.body.dataset.muted = String(!enabled || mutedByChair);
  document.body.dataset.speaking = String(speaking);
  const self = $("self-view");
  const want = speaking ? camera : null;
  if (self.srcObject !== want) self.srcObject = want;
}

// Whether the programme brings a picture (the speaking hall may get none: nobody spoke before).
let lastFrameAt = 0;
function watchPicture() {
  const video = $("programme");
  if ("requestVideoFrameCallback" in video) {
    const seen = () => {
      lastFrameAt = performance.now();
      video.requestVideoFrameCallback(seen);
    };
    video.requestVideoFrameCallback(seen);
  }
  setInterval(() => {
    const on = meeting && performance.now() - lastFrameAt < PICTURE_STALE_MS;
    document.body.dataset.programmePicture = on ? "on" : "off";
  }, 500);
}

$("hand").addEventListener("click", async () => {
  if (!meeting) return;
  const action = handRaised ? "lower_hand" : "raise_hand";
  handClickedAt = Date.now();
  try {
    await api("POST", `/api/v1/occurrences/${meeting.item.occurrence_id}/floor`, { action });
    handRaised = !handRaised;
    $("hand").setAttribute("aria-pressed", String(handRaised));
    $("hand").textContent = t(handRaised ? "lower_hand" : "raise_hand");
    note(action);
  } catch (error) {
    fail(error.message, t("server_unreachable"));
  }
});

$("mic").addEventListener("click", () => {
  for (const track of camera?.getAudioTracks() ?? []) track.enabled = !track.enabled;
  setMicLabel();
});

$("selftest-button").addEventListener("click", () => selfTest({ $, note, fail, t }));
$("selftest-stop").addEventListener("click", () => {
  $("selftest-view").hidden = true;
  $("selftest-stop").hidden = true;
  $("selftest-button").hidden = false;
  $("preview").srcObject = null;
});
setupSharing($("share"), { api, t, note, relayOnly, current: () => meeting });
setupDocuments({ api, token: () => localStorage.getItem(TOKEN_KEY) });

$("pair-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await pair($("pair-code").value);
    start();
  } catch (error) {
    fail(error.detail || error.message, pairShown(error));
  }
});

// --- start ---------------------------------------------------------------------------------

function start() {
  $("pairing").hidden = true;
  for (const id of ["next", "agenda-panel"]) $(id).hidden = false;
  $("selftest").hidden = managed;  // nobody stands at a hall's screen to click it
  setState("idle");
  api("GET", "/api/v1/terminals/me")
    .then((me) => {
      heartbeatMs = me.heartbeat_interval_s * 1000;
      $("site").textContent = me.site_name;
      kiosk.siteId = me.site_id;
      note("started", { terminal_id: me.terminal_id, site_id: me.site_id });
    })
    .catch((error) => fail(error.message, t("server_unreachable")));
  heartbeats();
  schedule();
}

async function main() {
  if (managed) {
    document.body.dataset.managed = "agent";
    keepAwake();
  }
  translate();
  tick();
  setInterval(tick, 1000);
  floorWatch();
  watchPicture();
  const code = params.get("code");
  if (code) {
    try {
      await pair(code);
    } catch (error) {
      fail(error.detail || error.message, pairShown(error));
    }
    params.delete("code");
    history.replaceState(null, "", `${location.pathname}${params.size ? `?${params}` : ""}`);
  }
  if (localStorage.getItem(TOKEN_KEY)) start();
  else showPairing();
}

main();
