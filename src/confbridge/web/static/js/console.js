// The chair console: the programme over WHEP, floor actions without reloading the page, the
// raised-hands queue and the site list kept live by live.js, the halls' gallery (gallery.js).

import { mountGallery } from "/static/js/gallery.js";
import { apply, connect, fill, labels } from "/static/js/live.js";
import { view } from "/static/js/whip.js";

const table = document.getElementById("sites-table");
const occurrenceId = table.dataset.occurrenceId;
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const siteNames = JSON.parse(document.getElementById("site-names").textContent);
const message = document.getElementById("console-message");
const status = document.getElementById("programme-status");
const video = document.getElementById("programme");

function showMessage(text) {
  message.textContent = text ?? "";
  message.hidden = !text;
}

function renderFloor(floor) {
  document.getElementById("speaker-name").textContent = siteNames[floor.speaker_site_id] ?? "–";
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
    floor = body.floor;
  } catch (error) {
    showMessage(fill(labels.failed, { reason: error.message }));
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
    const response = await fetch(`/occurrences/${occurrenceId}/console/grant`, {
      method: "POST",
      headers: { Accept: "application/json", "X-CSRF-Token": csrf },
    });
    const grant = await response.json();
    if (!response.ok) {
      status.textContent = grant.detail ?? String(response.status);
      return;
    }
    const session = await view(grant.whep_url, grant.token, {
      rtcConfiguration: { iceServers: grant.ice_servers ?? [] },
      content: true,
    });
    window.programmeSession = session;
    video.srcObject = session.stream;
    document.getElementById("content").srcObject = session.content;
    const showState = () => {
      const state = session.pc.connectionState;
      status.textContent = state === "connected" ? labels.programme_on : labels.programme_wait;
      document.body.dataset.programme = state;
    };
    session.pc.addEventListener("connectionstatechange", () => {
      showState();
      if (session.pc.connectionState === "failed") {
        session.stop().catch(() => {});
        setTimeout(watchProgramme, 3000);
      }
    });
    showState();
  } catch (error) {
    status.textContent = fill(labels.programme_failed, { reason: error.reason ?? error.message });
    setTimeout(watchProgramme, 5000);
  }
}

window.liveSource = connect(occurrenceId, renderFloor);
window.gallery = mountGallery();
watchProgramme();
window.addEventListener("pagehide", () => window.programmeSession?.stop().catch(() => {}));
export { apply };
