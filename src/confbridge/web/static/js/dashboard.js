// The IT dashboard keeps itself current: every few seconds its body is fetched again from the
// server (already rendered and translated there) and swapped in, unless the reader is in the
// middle of using a button of it.

import { pageFetch, SessionExpired } from "/static/js/session.js";

const body = document.getElementById("dashboard-body");
const every = Number(body.dataset.refreshS || "5") * 1000;

async function refresh() {
  if (body.contains(document.activeElement) && document.activeElement !== body) {
    return;
  }
  try {
    const response = await pageFetch(body.dataset.source, { headers: { Accept: "text/html" } });
    if (response.ok) {
      body.innerHTML = await response.text();
      body.dataset.refreshedAt = String(Date.now());
    }
  } catch (error) {
    if (error instanceof SessionExpired) {
      clearInterval(timer); // the notice stays; signing in again reloads the page
      body.dataset.stale = "true";
    }
    // else offline for a moment: the next round tries again
  }
}

const timer = setInterval(refresh, every);
