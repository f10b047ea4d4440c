// The chair console: the programme over WHEP, floor actions without reloading the page, the
// raised-hands queue and the site list kept live by live.js, the halls' gallery (gallery.js).

import { mountRecording } from "/static/js/console_recording.js";
import { mountGallery } from "/static/js/gallery.js";
import { apply, connect, fill, labels } from "/static/js/live.js";
import { pageFetch, SessionExpired } from "/static/js/session.js";
import { view } from "/static/js/whip.js";

const table = document.getElementById("sites-table");
const occurrenceId = table.dataset.occurrenceId;
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const siteNames = JSON.parse(document.getElementById("site-names").textContent);
const message = document.getElementById("console-message");
const status = document.getElementById("programme-status");
const video = document.getElementById("programme");
const soundToggle = document.getElementById("sound-toggle");
const chairSiteId = Number(document.querySelector(".programme").dataset.chairSiteId);
const PICTURE_STALE_MS = 2000;
let speakerSiteId = null;
let lastFrameAt = 0;
let programme = null; // the WHEP session, once connected

// --- sound: on by default; a browser that refuses to start with sound plays it muted, and the
// button says so

function showSound() {
  const muted = video.muted;
  soundToggle.dataset.muted = String(muted);
  soundToggle.textContent = muted ? labels.sound_on : labels.sound_off;
  document.body.dataset.sound = muted ? "off" : "on";
}

async function playWithSound() {
  video.muted = false;
  try {
    await video.play();
  } catch {
    video.muted = true;
    video.play().catch(() => {});
    showMessage(labels.sound_blocked);
  }
  showSound();
}

soundToggle.addEventListener("click", () => {
  video.muted = !video.muted;
  if (!video.muted) {
    video.play().catch(() => {});
    if (message.textContent === labels.sound_blocked) {
      showMessage("");
    }
  }
  showSound();
});
video.addEventListener("volumechange", showSound);

// --- what the programme shows: said as it is (connected to what, receiving a picture or not)

function siteJoined(siteId) {
  return table.querySelector(`tr[data-site-id="${siteId}"]`)?.dataset.state === "joined";
}

function watchFrames() {
  if ("requestVideoFrameCallback" in video) {
    const seen = () => {
      lastFrameAt = performance.now();
      video.requestVideoFrameCallback(seen);
    };
    video.requestVideoFrameCallback(seen);
  }
}

function showProgrammeState() {
  const pcState = programme?.pc.connectionState;
  let state = "connecting";
  let text = labels.programme_wait;
  if (pcState === "connected") {
    if (performance.now() - lastFrameAt < PICTURE_STALE_MS) {
      [state, text] = ["receiving", labels.programme_on];
    } else if (!siteJoined(chairSiteId)) {
      [state, text] = ["waiting", labels.programme_no_chair];
    } else {
      [state, text] = ["waiting", labels.programme_no_picture];
    }
  }
  if (programme) {
    status.dataset.state = state;
    status.textContent = text;
    document.body.dataset.programme = state;
  }
  showSpeaker();
}

function showSpeaker() {
  const name = siteNames[speakerSiteId] ?? "–";
  const joined = speakerSiteId === null || siteJoined(speakerSiteId);
  const element = document.getElementById("speaker-name");
  element.textContent = joined ? name : fill(labels.not_joined_yet, { name });
  element.dataset.joined = String(joined);
}

function showMessage(text) {
  message.textContent = text ?? "";
  message.hidden = !text;
}

function renderFloor(floor) {
  speakerSiteId = floor.speaker_site_id ?? null;
  showSpeaker();
  document.body.dataset.floorSpeaker = floor.speaker_site_id;
  // Who presents (null: nobody); the chair can stop it.
  const presenter = floor.content_site_id ?? null;
  document.body.dataset.content = presenter ?? "";
  document.getElementById("content-box").hidden = presenter === null;
  if (presenter !== null) {
    // autoplay does not start a video that was hidden when its stream came
    document.getElementById("content").play().catch(() => {});
  }
  document.getElementById("content-name").textContent = siteNames[presenter] ?? "–";
  document.querySelector('button[data-action="stop_content"]').disabled = presenter === null;
  const queue = document.getElementById("hands-queue");
  const template = document.getElementById("hand-template");
  queue.replaceChildren();
  for (const siteId of floor.hands ?? []) {
    const item = template.content.firstElementChild.cloneNode(true);
    item.dataset.siteId = siteId;
    item.querySelector(".hand-name").textContent = siteNames[siteId] ?? siteId;
    item.querySelector('input[name="site_id"]').value = siteId;
    queue.append(item);
  }
  document.getElementById("hands-empty").hidden = (floor.hands ?? []).length > 0;
  const muted = new Set(floor.muted_site_ids ?? []);
  for (const row of table.querySelectorAll("tr[data-site-id]")) {
    const id = Number(row.dataset.siteId);
    const hand = (floor.hands ?? []).indexOf(id) + 1;
    row.querySelector(".speaking").hidden = id !== floor.speaker_site_id;
    row.querySelector(".muted-flag").hidden = !muted.has(id);
    row.querySelector(".hand").hidden = hand === 0;
    row.querySelector(".hand").textContent = hand ? fill(labels.hand, { position: hand }) : "";
    row.querySelector('button[data-action="give"]').disabled = id === floor.speaker_site_id;
    row.querySelector('button[data-action="mute"]').hidden = muted.has(id);
    row.querySelector('button[data-action="unmute"]').hidden = !muted.has(id);
  }
}

async function act(form) {
  const buttons = [...form.querySelectorAll("button")];
  const wasDisabled = buttons.map((button) => button.disabled);
  buttons.forEach((button) => (button.disabled = true));
  let floor = null;
  try {
    // Not form.action: the form has a field named "action", which shadows the property.
    const response = await pageFetch(form.getAttribute("action"), {
      method: "POST",
      body: new FormData(form),
      headers: { Accept: "application/json", "X-CSRF-Token": csrf },
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      showMessage(body.detail ?? fill(labels.failed, { reason: response.status }));
      return;
    }
    showMessage("");
    floor = body.floor;
  } catch (error) {
    if (!(error instanceof SessionExpired)) {
      showMessage(fill(labels.failed, { reason: error.message }));
    }
  } finally {
    buttons.forEach((button, index) => (button.disabled = wasDisabled[index]));
    // The live stream brings the same change; showing it now saves the round trip.
    if (floor) {
      renderFloor(floor);
    }
  }
}

document.addEventListener("submit", (event) => {
  const form = event.target.closest(".floor-form");
  if (form) {
    event.preventDefault();
    act(form);
  }
});

async function watchProgramme() {
  try {
    const response = await pageFetch(`/occurrences/${occurrenceId}/console/grant`, {
      method: "POST",
      headers: { Accept: "application/json", "X-CSRF-Token": csrf },
    });
    const grant = await response.json();
    if (!response.ok) {
      status.textContent = grant.detail ?? String(response.status);
      status.dataset.state = "failed";
      document.body.dataset.programme = "failed";
      setTimeout(watchProgramme, 15000); // the meeting may open, a server may start
      return;
    }
    const session = await view(grant.whep_url, grant.token, {
      rtcConfiguration: { iceServers: grant.ice_servers ?? [] },
      content: true,
    });
    window.programmeSession = session;
    programme = session;
    video.srcObject = session.stream;
    document.getElementById("content").srcObject = session.content;
    playWithSound();
    session.pc.addEventListener("connectionstatechange", () => {
      showProgrammeState();
      if (session.pc.connectionState === "failed") {
        session.stop().catch(() => {});
        setTimeout(watchProgramme, 3000);
      }
    });
    showProgrammeState();
  } catch (error) {
    if (error instanceof SessionExpired) {
      status.textContent = error.message;
      return;
    }
    // the media server's own reason is English, for the log; the page says what it can
    console.info("programme:", error.reason ?? error.message);
    status.textContent =
      error.status === 0
        ? labels.unreachable
        : fill(labels.programme_failed, { reason: `HTTP ${error.status ?? "?"}` });
    status.dataset.state = "failed";
    setTimeout(watchProgramme, 5000);
  }
}

// --- the meeting's time: extend, end now, the notice while it runs over its end ------------

let schedule = JSON.parse(document.getElementById("schedule").textContent);
const timeFormat = new Intl.DateTimeFormat(document.documentElement.lang === "en" ? "en-GB" : "vi-VN", {
  hour: "2-digit", minute: "2-digit", hour12: false, timeZone: "Asia/Ho_Chi_Minh",
});

function renderSchedule() {
  const box = document.getElementById("meeting-time");
  if (!box) return;
  const now = Date.now();
  const end = Date.parse(schedule.end_at);
  const closes = Date.parse(schedule.closes_at);
  const ended = schedule.ended || schedule.cancelled || now >= closes;
  const state = ended ? "ended" : now >= end ? "overrun" : now >= Date.parse(schedule.start_at) ? "running" : "idle";
  box.dataset.state = state;
  document.body.dataset.meeting = state;
  const endLabel = document.getElementById("meeting-end-label");
  if (ended) {
    endLabel.textContent = labels.meeting_ended;
  } else {
    endLabel.textContent = `${labels.ends_at} `;
    const strong = document.createElement("strong");
    strong.id = "meeting-end";
    strong.textContent = timeFormat.format(end);
    endLabel.append(strong);
  }
  const notice = document.getElementById("overrun-notice");
  notice.hidden = state !== "overrun";
  if (state === "overrun") {
    notice.textContent = fill(labels.overrun, { end: timeFormat.format(end), closes: timeFormat.format(closes) });
  }
  const actions = document.getElementById("schedule-actions");
  if (actions) actions.hidden = state === "ended" || state === "idle";
}

async function changeSchedule(form) {
  const question = form.dataset.confirm;
  if (question && !window.confirm(question)) return;
  const buttons = [...form.closest("#schedule-actions").querySelectorAll("button")];
  buttons.forEach((button) => (button.disabled = true));
  try {
    const response = await fetch(form.getAttribute("action"), {
      method: "POST",
      body: new FormData(form),
      headers: { Accept: "application/json", "X-CSRF-Token": csrf },
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      showMessage(body.detail ?? fill(labels.failed, { reason: response.status }));
      return;
    }
    showMessage("");
    schedule = body.schedule;
    renderSchedule();
  } catch (error) {
    showMessage(fill(labels.failed, { reason: error.message }));
  } finally {
    buttons.forEach((button) => (button.disabled = false));
  }
}

document.addEventListener("submit", (event) => {
  const form = event.target.closest(".schedule-form");
  if (form) {
    event.preventDefault();
    changeSchedule(form);
  }
});

window.liveSource = connect(occurrenceId, renderFloor);
speakerSiteId = JSON.parse(document.getElementById("live-initial").textContent).floor.speaker_site_id;
watchFrames();
showSound();
setInterval(showProgrammeState, 1000);
// extended or ended elsewhere (the occurrence page, the API, by itself after running over)
window.liveSource.addEventListener("schedule", (event) => {
  schedule = JSON.parse(event.data);
  renderSchedule();
});
renderSchedule();
setInterval(renderSchedule, 1000);
window.gallery = mountGallery();
mountRecording(occurrenceId, csrf, showMessage);
watchProgramme();
window.addEventListener("pagehide", () => window.programmeSession?.stop().catch(() => {}));
export { apply };
