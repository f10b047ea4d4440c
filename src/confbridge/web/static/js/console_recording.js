// The console's record button: start and stop without reloading the page; the badge says
// whether the meeting records now, as the server says every few seconds (a series set to
// record always starts by itself, another console may stop it).

import { pageFetch, SessionExpired } from "/static/js/session.js";

const STATE_POLL_MS = 5000;

export function mountRecording(occurrenceId, csrf, showMessage) {
  const form = document.querySelector(".recording-form");
  if (!form) return;
  const button = document.getElementById("recording-button");
  const badge = document.getElementById("recording-badge");
  const refused = button.dataset.refused === "true";
  let busy = false;

  function show(recording) {
    badge.hidden = !recording;
    form.querySelector('input[name="action"]').value = recording ? "stop" : "start";
    button.textContent = recording ? button.dataset.stopLabel : button.dataset.startLabel;
    button.disabled = busy || (refused && !recording);
    document.body.dataset.recording = String(recording);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    busy = true;
    button.disabled = true;
    try {
      const response = await pageFetch(form.getAttribute("action"), {
        method: "POST",
        body: new FormData(form),
        headers: { Accept: "application/json", "X-CSRF-Token": csrf },
      });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) {
        showMessage(body.detail ?? String(response.status));
      } else {
        showMessage("");
        busy = false;
        show(body.recording);
      }
    } catch (error) {
      if (!(error instanceof SessionExpired)) showMessage(error.message);
    } finally {
      busy = false;
      button.disabled = refused && form.querySelector('input[name="action"]').value === "start";
    }
  });

  async function poll() {
    if (busy) return;
    try {
      const response = await pageFetch(`/occurrences/${occurrenceId}/recording`, {
        headers: { Accept: "application/json" },
      });
      if (response.ok) show((await response.json()).recording);
    } catch {
      // the next poll may succeed
    }
  }

  show(!badge.hidden);
  setInterval(poll, STATE_POLL_MS);
}
