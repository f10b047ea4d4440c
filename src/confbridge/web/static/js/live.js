// Live status of an occurrence's sites: the table rows follow the server-sent events of
// /occurrences/{id}/live (a "snapshot" of every site, then "update"s of the sites that change).
// The browser's EventSource reconnects by itself; each reconnection starts with a snapshot.

import { pageFetch, SessionExpired } from "/static/js/session.js";

const labels = JSON.parse(document.getElementById("live-labels").textContent);

function fill(template, values) {
  return template.replace(/%\((\w+)\)s/g, (_, name) => String(values[name] ?? ""));
}

function setHidden(element, hidden) {
  if (element) {
    element.hidden = hidden;
  }
}

/** Show one site's status in its table row. */
export function renderSite(row, view) {
  row.dataset.state = view.state;
  const badge = row.querySelector(".state-badge");
  badge.className = `state-badge state-${view.state}`;
  badge.textContent = labels.states[view.state] ?? view.state;
  setHidden(row.querySelector(".speaking"), !view.speaking);
  setHidden(row.querySelector(".muted-flag"), !view.muted);
  const hand = row.querySelector(".hand");
  if (hand) {
    hand.hidden = !view.hand;
    hand.textContent = view.hand ? fill(labels.hand, { position: view.hand }) : "";
  }
  const quality = row.querySelector(".quality");
  quality.textContent = "";
  if (view.quality) {
    const word = document.createElement("span");
    word.className = `quality-${view.quality}`;
    word.textContent = labels.qualities[view.quality] ?? view.quality;
    quality.append(word);
    const details = [];
    if (view.rtt_ms !== null && view.rtt_ms !== undefined) {
      details.push(fill(labels.rtt, { rtt: view.rtt_ms }));
    }
    if (view.loss_pct !== null && view.loss_pct !== undefined) {
      details.push(`${labels.loss} ${view.loss_pct}%`);
    }
    if (details.length) {
      const meta = document.createElement("span");
      meta.className = "meta";
      meta.textContent = ` ${details.join(" · ")}`;
      quality.append(meta);
    }
  } else {
    const none = document.createElement("span");
    none.className = "meta";
    none.textContent = "–";
    quality.append(none);
  }
  const give = row.querySelector('button[data-action="give"]');
  if (give) {
    give.disabled = view.speaking;
  }
  setHidden(row.querySelector('button[data-action="mute"]'), view.muted);
  setHidden(row.querySelector('button[data-action="unmute"]'), !view.muted);
}

/** Apply a snapshot or an update: `{sites: {id: view}, floor: {...}}`. */
export function apply(data, onFloor) {
  for (const [siteId, view] of Object.entries(data.sites ?? {})) {
    const row = document.querySelector(`#sites-table tr[data-site-id="${siteId}"]`);
    if (row) {
      renderSite(row, view);
    }
  }
  const joined = document.getElementById("joined-count");
  if (joined) {
    joined.textContent = document.querySelectorAll('#sites-table tr[data-state="joined"]').length;
  }
  if (data.floor && onFloor) {
    onFloor(data.floor);
  }
}

/** A stream that stays away this long is shown as reconnecting (the server ends each stream
 * after a while and the browser reconnects at once: no need to show that). */
const RECONNECTING_AFTER_MS = 3000;

/** Follow the occurrence's live status; returns the EventSource. */
export function connect(occurrenceId, onFloor) {
  const indicator = document.getElementById("live-indicator");
  const source = new EventSource(`/occurrences/${occurrenceId}/live`);
  const handle = (event) => apply(JSON.parse(event.data), onFloor);
  let away = null;
  source.addEventListener("snapshot", handle);
  source.addEventListener("update", handle);
  source.addEventListener("open", () => {
    clearTimeout(away);
    away = null;
    indicator.className = "live-indicator connected";
    indicator.textContent = `${labels.connection}: ${labels.connected}`;
    document.body.dataset.live = "connected";
  });
  source.addEventListener("error", () => {
    if (away === null) {
      away = setTimeout(async () => {
        indicator.className = "live-indicator reconnecting";
        indicator.textContent = `${labels.connection}: ${labels.reconnecting}`;
        document.body.dataset.live = "reconnecting";
        // an ended sign-in looks like a broken stream to EventSource: ask, and say so
        try {
          await pageFetch("/session");
        } catch (error) {
          if (error instanceof SessionExpired) {
            source.close();
            document.body.dataset.live = "signed-out";
          }
        }
      }, RECONNECTING_AFTER_MS);
    }
  });
  return source;
}

export { labels, fill };

const table = document.getElementById("sites-table");
if (table && !document.getElementById("programme")) {
  window.liveSource = connect(table.dataset.occurrenceId);
}
