// The booking form: search the unit tree (accents optional), tick what the search shows, and
// check for clashes while the form is filled in. The form works without this script too.

import { pageFetch } from "/static/js/session.js";

const form = document.getElementById("booking-form");
const search = document.getElementById("site-search");
const tree = document.getElementById("site-tree");
const selectShown = document.getElementById("select-shown");
const clearSelection = document.getElementById("clear-selection");
const count = document.getElementById("selection-count");
const panel = document.getElementById("check-panel");
const CHECK_DELAY_MS = 700;

/** Lower case without accents, "đ" as "d": "Hạ Long" matches "ha long". */
function plain(text) {
  return text.toLowerCase().replaceAll("đ", "d").normalize("NFD").replace(/[\u0300-\u036f]/g, "");
}

function filterTree() {
  const wanted = plain(search.value.trim());
  for (const site of tree.querySelectorAll(".tree-site")) {
    site.hidden = wanted !== "" && !plain(site.dataset.name).includes(wanted);
  }
  // A unit stays visible when its own name matches or something under it is visible.
  const units = [...tree.querySelectorAll(".tree-unit")].reverse();
  for (const unit of units) {
    const ownMatch = wanted === "" || plain(unit.dataset.name).includes(wanted);
    const visibleChild = unit.querySelector(".tree-site:not([hidden]), .tree-unit:not([hidden])");
    unit.hidden = !ownMatch && !visibleChild;
    if (ownMatch && wanted !== "") {
      unit.querySelectorAll(".tree-site, .tree-unit").forEach((node) => (node.hidden = false));
    }
  }
}

function updateCount() {
  const sites = tree.querySelectorAll('input[name="site_ids"]:checked').length;
  const units = tree.querySelectorAll('input[name="unit_ids"]:checked').length;
  count.textContent = count.dataset.template
    .replace("{sites}", String(sites))
    .replace("{units}", String(units));
}

let timer = null;
let sequence = 0;

async function check() {
  const mine = ++sequence;
  const data = new FormData(form);
  data.delete("action");
  try {
    const response = await pageFetch("/bookings/check", { method: "POST", body: data });
    if (response.ok && mine === sequence) {
      panel.innerHTML = await response.text();
    }
  } catch {
    // The check is a convenience; the buttons still work (an ended sign-in is shown above).
  }
}

function scheduleCheck() {
  clearTimeout(timer);
  timer = setTimeout(check, CHECK_DELAY_MS);
}

// "Does not repeat": the words field says so and is not used meanwhile.
const once = document.getElementById("once");
const words = document.getElementById("words");
function followOnce() {
  words.readOnly = once.checked;
  words.setAttribute("aria-disabled", String(once.checked));
  if (once.checked) {
    words.dataset.before = words.value;
    words.value = once.dataset.words;
  } else if (words.value === once.dataset.words) {
    words.value = words.dataset.before ?? "";
  }
}
if (once && words) {
  once.addEventListener("change", followOnce);
  if (once.checked) {
    words.readOnly = true;
  }
}

if (form && tree) {
  selectShown.hidden = false;
  clearSelection.hidden = false;
  search.addEventListener("input", filterTree);
  search.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault(); // Enter in the search box filters; it does not submit the form
    }
  });
  selectShown.addEventListener("click", () => {
    for (const box of tree.querySelectorAll('.tree-site:not([hidden]) input[name="site_ids"]')) {
      if (!box.closest("[hidden]")) {
        box.checked = true;
      }
    }
    updateCount();
    scheduleCheck();
  });
  clearSelection.addEventListener("click", () => {
    tree.querySelectorAll("input:checked").forEach((box) => (box.checked = false));
    updateCount();
    scheduleCheck();
  });
  form.addEventListener("change", (event) => {
    // the emergency choices belong to the clashes shown: a re-check would replace them
    if (event.target !== search && !event.target.closest("#emergency")) {
      updateCount();
      scheduleCheck();
    }
  });
  updateCount();
}

for (const button of document.querySelectorAll("button[data-confirm]")) {
  button.addEventListener("click", (event) => {
    if (!window.confirm(button.dataset.confirm)) {
      event.preventDefault();
    }
  });
}
