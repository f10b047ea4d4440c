// The meeting's documents on the kiosk ("Xem tài liệu"): the list of the meeting's documents,
// the current agenda item's first, and a PDF's pages as the server draws them (page n of N,
// previous and next, also with a remote's arrow keys). A page is fetched with the terminal's
// token and shown as a data: URL, the one image source the kiosk's policy allows besides
// its own address.

const WORDS = {
  vi: {
    show: "Xem tài liệu", title: "Tài liệu họp", close: "Đóng", previous: "Trang trước",
    next: "Trang sau", list: "Danh sách tài liệu", none: "Cuộc họp chưa có tài liệu",
    pdf_only: "chỉ xem được tệp PDF trên màn hình", current: "đang thảo luận",
    failed: "Chưa hiển thị được tài liệu, thử lại sau", page: "Trang {n}/{count}",
    first_pages: "màn hình hiển thị {count} trang đầu", item: "Mục",
  },
  en: {
    show: "Documents", title: "Meeting documents", close: "Close", previous: "Previous page",
    next: "Next page", list: "All documents", none: "The meeting has no documents yet",
    pdf_only: "only PDF files are shown on this screen", current: "on now",
    failed: "The document cannot be shown yet; try again later", page: "Page {n} of {count}",
    first_pages: "the screen shows the first {count} pages", item: "Item",
  },
};

const lang = new URLSearchParams(location.search).get("lang") === "en" ? "en" : "vi";
const t = (key, values = {}) => (WORDS[lang][key] ?? WORDS.vi[key])
  .replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
const $ = (id) => document.getElementById(id);

let api = null;
let token = () => null;
let occurrenceId = null;
// what is shown: {document, page, count}, or null on the list
let open = null;

/** Wire the button and the viewer once; `api(method, path)` and `token()` as kiosk.js has them. */
export function setupDocuments(options) {
  ({ api, token } = options);
  for (const node of document.querySelectorAll("[data-doc-words]")) node.textContent = t(node.dataset.docWords);
  $("documents-button").addEventListener("click", () => showDocuments());
  // before the meeting: the coming one's documents, from the list
  $("next-documents").addEventListener("click", () => {
    const coming = Number($("next-documents").dataset.occurrenceId);
    if (!coming) return;
    occurrenceId = coming;  // the programme (and its own button) is not on the screen now
    showDocuments({ list: true });
  });
  $("documents-close").addEventListener("click", closeDocuments);
  $("documents-back").addEventListener("click", () => showDocuments({ list: true }));
  $("page-previous").addEventListener("click", () => turn(-1));
  $("page-next").addEventListener("click", () => turn(1));
  document.addEventListener("keydown", (event) => {
    if ($("documents-view").hidden) return;
    if (event.key === "Escape") closeDocuments();
    else if (["ArrowRight", "PageDown"].includes(event.key)) turn(1);
    else if (["ArrowLeft", "PageUp"].includes(event.key)) turn(-1);
  });
}

/** The documents of occurrence `id` may be asked for (the hall is in that meeting). */
export function followDocuments(id) {
  occurrenceId = id;
  $("documents-button").hidden = false;
}

/** The meeting is over for this hall: its documents go from the screen. */
export function stopDocuments() {
  occurrenceId = null;
  $("documents-button").hidden = true;
  closeDocuments();
}

function closeDocuments() {
  open = null;
  $("documents-view").hidden = true;
  $("document-page").removeAttribute("src");
}

function itemLabels(invitation) {
  return new Map((invitation.agenda || []).map((i) => [i.id, `${t("item")} ${i.position}. ${i.title}`]));
}

// The list, or the current item's first PDF straight away (unless the list was asked for).
async function showDocuments({ list = false } = {}) {
  if (occurrenceId === null) return;
  $("documents-view").hidden = false;
  $("document-viewer").hidden = true;
  $("documents-status").textContent = "";
  let documents, invitation;
  try {
    [documents, invitation] = await Promise.all([
      api("GET", `/api/v1/occurrences/${occurrenceId}/documents`),
      api("GET", `/api/v1/occurrences/${occurrenceId}/invitation`),
    ]);
  } catch {
    $("documents-status").textContent = t("failed");
    return;
  }
  const current = invitation.current_item_id;
  const labels = itemLabels(invitation);
  // the current item's documents first, then the meeting's order
  documents.sort((a, b) => (b.agenda_item_id === current && current !== null)
    - (a.agenda_item_id === current && current !== null));
  renderList(documents, labels, current);
  const first = documents.find((d) => d.kind === "pdf" && current !== null && d.agenda_item_id === current);
  if (first && !list) await openDocument(first);
}

function renderList(documents, labels, current) {
  const list = $("documents-list");
  list.hidden = false;
  if (!documents.length) $("documents-status").textContent = t("none");
  list.replaceChildren(...documents.map((d) => {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = d.name;
    button.dataset.documentId = d.id;
    button.disabled = d.kind !== "pdf";
    button.addEventListener("click", () => openDocument(d));
    const meta = document.createElement("span");
    meta.className = "meta";
    const notes = [labels.get(d.agenda_item_id), d.agenda_item_id === current && current !== null ? t("current") : null,
      d.kind !== "pdf" ? t("pdf_only") : null].filter(Boolean);
    meta.textContent = notes.length ? ` (${notes.join(" · ")})` : "";
    li.append(button, meta);
    return li;
  }));
}

async function openDocument(doc) {
  let pages;
  try {
    pages = await api("GET", `/api/v1/documents/${doc.id}/pages`);
  } catch {
    $("documents-status").textContent = t("failed");
    return;
  }
  if (!pages.page_count) {
    $("documents-status").textContent = t("failed");
    return;
  }
  open = { document: doc, page: 1, count: pages.page_count, total: pages.total_pages };
  $("documents-list").hidden = true;
  $("document-viewer").hidden = false;
  $("document-name").textContent = doc.name;
  await showPage(1);
}

function turn(step) {
  if (!open) return;
  const page = Math.min(Math.max(open.page + step, 1), open.count);
  if (page !== open.page) showPage(page);
}

function dataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

async function showPage(page) {
  const shown = open;
  shown.page = page;
  $("page-previous").disabled = page <= 1;
  $("page-next").disabled = page >= shown.count;
  let more = t("page", { n: page, count: shown.count });
  if (shown.total > shown.count) more += ` (${t("first_pages", { count: shown.count })})`;
  $("page-number").textContent = more;
  try {
    const response = await fetch(`/api/v1/documents/${shown.document.id}/pages/${page}.png`, {
      headers: { Authorization: `Bearer ${token()}` }, signal: AbortSignal.timeout(20000),
    });
    if (!response.ok) throw new Error(`page ${page}: ${response.status}`);
    const url = await dataUrl(await response.blob());
    if (open !== shown || shown.page !== page) return;  // turned again meanwhile
    const image = $("document-page");
    image.alt = `${shown.document.name} – ${t("page", { n: page, count: shown.count })}`;
    image.src = url;
    image.dataset.page = String(page);
    $("documents-status").textContent = "";
  } catch {
    $("documents-status").textContent = t("failed");
  }
}
