// The halls' gallery (điểm danh) on the chair console and its read-only page: every
// connected hall as a live tile (its thumbnail) with its name and state, paged, a roll call
// that steps through the invited halls, and a large preview of one hall (its camera). One
// WHEP gallery session carries it all; a page change or a preview only re-points its tracks.

import { fill, labels as liveLabels, listen } from "/static/js/live.js";
import {
  PAGE_SIZE,
  RollCall,
  clampPage,
  connectedHalls,
  pageCount,
  pageHalls,
  pageOf,
  tileFlags,
} from "/static/js/gallery_model.js";
import { viewGallery } from "/static/js/whip.js";

const RETRY_MS = 5000;

function byId(id) {
  return document.getElementById(id);
}

function json(id) {
  const element = byId(id);
  return element ? JSON.parse(element.textContent) : null;
}

function showFlags(container, view, words) {
  const flags = tileFlags(view);
  for (const name of ["speaking", "hand", "muted", "poor", "absent"]) {
    const flag = container.querySelector(`.flag-${name}`);
    if (flag) {
      flag.hidden = !flags[name];
    }
  }
  const hand = container.querySelector(".flag-hand");
  if (hand && view?.hand) {
    hand.textContent = fill(liveLabels.hand, { position: view.hand });
  }
  const absent = container.querySelector(".flag-absent");
  if (absent) {
    absent.textContent = words.not_joined;
  }
  return flags;
}

/** Mount the gallery of `#gallery`, if the page has one; returns its state (for tests). */
export function mountGallery() {
  const root = byId("gallery");
  if (!root) {
    return null;
  }
  const occurrenceId = root.dataset.occurrenceId;
  const size = Number(root.dataset.pageSize) || PAGE_SIZE;
  const controls = root.dataset.controls === "1";
  const halls = json("gallery-halls") ?? [];
  const words = json("gallery-labels") ?? {};
  const names = Object.fromEntries(halls.map((hall) => [hall.id, hall.name]));
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const status = byId("gallery-status");
  const views = { ...(json("live-initial")?.sites ?? {}) };
  const state = {
    page: 0,
    preview: null,
    rollCall: null,
    session: null,
    shown: [],
    applied: null,
    sent: "",
    chain: Promise.resolve(),
  };

  // One tile element per track of the session, made once: a page change keeps them playing.
  const list = byId("gallery-tiles");
  const template = byId("tile-template");
  const tiles = [];
  for (let index = 0; index < size; index += 1) {
    const tile = template.content.firstElementChild.cloneNode(true);
    tile.hidden = true;
    tile.dataset.slot = index;
    tile.querySelector(".tile-open").addEventListener("click", () => {
      preview(state.shown[index]?.id ?? null);
    });
    list.append(tile);
    tiles.push(tile);
  }

  function preview(siteId) {
    state.preview = siteId;
    render();
  }

  function render() {
    const connected = connectedHalls(halls, views);
    const current = state.rollCall?.current;
    if (current) {
      state.page = pageOf(connected, current.id, size) ?? state.page;
    }
    state.page = clampPage(state.page, connected.length, size);
    state.shown = pageHalls(connected, state.page, size);
    tiles.forEach((tile, index) => {
      const hall = state.shown[index];
      tile.hidden = !hall;
      if (!hall) {
        delete tile.dataset.siteId;
        return;
      }
      tile.dataset.siteId = hall.id;
      tile.querySelector(".tile-name").textContent = hall.name;
      const flags = showFlags(tile, views[hall.id], words);
      tile.classList.toggle("speaking", flags.speaking);
      tile.classList.toggle("previewed", hall.id === state.preview);
      tile.querySelector(".tile-open").setAttribute("aria-pressed", hall.id === state.preview);
      const video = tile.querySelector("video");
      if (video.srcObject && video.paused) {
        video.play().catch(() => {});
      }
    });
    const pages = pageCount(connected.length, size);
    byId("gallery-page").textContent = fill(words.page, { page: state.page + 1, pages });
    byId("gallery-count").textContent = fill(words.halls, {
      connected: connected.length,
      invited: halls.length,
    });
    byId("gallery-prev").disabled = state.page === 0;
    byId("gallery-next").disabled = state.page >= pages - 1;
    renderPreview();
    renderRollCall();
    point();
  }

  function renderPreview() {
    const box = byId("gallery-preview");
    box.hidden = state.preview === null;
    root.dataset.preview = state.preview ?? "";
    if (state.preview === null) {
      return;
    }
    byId("preview-name").textContent = names[state.preview] ?? state.preview;
    const flags = tileFlags(views[state.preview]);
    const described = [];
    for (const [name, word] of [
      ["absent", words.not_joined],
      ["speaking", liveLabels.speaking],
      ["muted", liveLabels.muted],
    ]) {
      if (flags[name]) {
        described.push(word);
      }
    }
    if (flags.hand) {
      described.push(fill(liveLabels.hand, { position: views[state.preview].hand }));
    }
    byId("preview-flags").textContent = described.join(" · ");
    const video = byId("preview-video");
    if (video.srcObject && video.paused) {
      video.play().catch(() => {});
    }
    const form = byId("preview-floor");
    if (form) {
      form.querySelector('input[name="site_id"]').value = state.preview;
      // Giving the floor to a hall that speaks already, or is not there, does nothing useful.
      byId("preview-give").disabled = flags.speaking || flags.absent;
    }
  }

  function renderRollCall() {
    const call = state.rollCall;
    byId("rollcall-controls").hidden = !call;
    byId("rollcall-start").hidden = Boolean(call);
    root.dataset.rollcall = call ? call.current?.id ?? "" : "";
    if (!call) {
      return;
    }
    byId("rollcall-position").textContent = fill(words.rollcall, {
      position: call.position,
      total: call.total,
    });
    byId("rollcall-prev").disabled = call.first;
    byId("rollcall-next").disabled = call.last;
  }

  // Tell the bridge which hall each track carries, when that changed; requests go in order.
  function point() {
    const session = state.session;
    if (!session) {
      return;
    }
    const layout = { tiles: state.shown.map((hall) => hall.id), preview: state.preview };
    const key = JSON.stringify(layout);
    if (key === state.sent) {
      return;
    }
    state.sent = key;
    state.chain = state.chain
      .then(() => session.layout(layout))
      .then((applied) => {
        state.applied = applied;
        status.textContent = words.connected;
      })
      .catch((error) => {
        state.sent = "";
        status.textContent = fill(words.failed, { reason: error.reason ?? error.message });
      });
  }

  function stepRollCall(step) {
    const call = state.rollCall;
    if (call) {
      preview((step > 0 ? call.next() : call.previous())?.id ?? null);
    }
  }

  byId("gallery-prev").addEventListener("click", () => {
    state.page -= 1;
    render();
  });
  byId("gallery-next").addEventListener("click", () => {
    state.page += 1;
    render();
  });
  byId("rollcall-start").addEventListener("click", () => {
    state.rollCall = new RollCall(halls);
    preview(state.rollCall.current?.id ?? null);
  });
  byId("rollcall-next").addEventListener("click", () => stepRollCall(1));
  byId("rollcall-prev").addEventListener("click", () => stepRollCall(-1));
  byId("rollcall-stop").addEventListener("click", () => {
    state.rollCall = null;
    preview(null);
  });
  byId("preview-close").addEventListener("click", () => preview(null));

  listen((data, type) => {
    if (type === "snapshot") {
      for (const key of Object.keys(views)) {
        delete views[key];
      }
    }
    Object.assign(views, data.sites ?? {});
    render();
  });

  async function connect() {
    try {
      const response = await fetch(`/occurrences/${occurrenceId}/gallery/grant`, {
        method: "POST",
        headers: { Accept: "application/json", "X-CSRF-Token": csrf },
      });
      const grant = await response.json().catch(() => ({}));
      if (!response.ok) {
        status.textContent = fill(words.failed, { reason: grant.detail ?? response.status });
        setTimeout(connect, RETRY_MS);
        return;
      }
      const session = await viewGallery(grant.whep_url, grant.token, size, {
        rtcConfiguration: { iceServers: grant.ice_servers ?? [] },
      });
      state.session = session;
      state.sent = "";
      byId("preview-video").srcObject = session.preview;
      tiles.forEach((tile, index) => {
        tile.querySelector("video").srcObject = session.tiles[index];
      });
      session.pc.addEventListener("connectionstatechange", () => {
        root.dataset.connection = session.pc.connectionState;
        if (session.pc.connectionState === "failed") {
          state.session = null;
          session.stop().catch(() => {});
          setTimeout(connect, RETRY_MS);
        }
      });
      render();
    } catch (error) {
      status.textContent = fill(words.failed, { reason: error.reason ?? error.message });
      setTimeout(connect, RETRY_MS);
    }
  }

  render();
  connect();
  window.addEventListener("pagehide", () => state.session?.stop().catch(() => {}));
  return state;
}
