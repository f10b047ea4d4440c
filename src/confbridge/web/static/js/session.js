// One way for every page to meet an ended sign-in: a script's request that gets 401 shows the
// same message with a link to sign in again, which leads back to this page; and a filled form
// (a <form data-draft>) is kept in sessionStorage until the server has taken it, so it is
// there again after signing in.

const DRAFT_PREFIX = "cb-draft:";
const SENT_SUFFIX = ":sent";
const INTERRUPTED_SUFFIX = ":interrupted";

/** Raised by pageFetch when the sign-in has ended; the message is already shown. */
export class SessionExpired extends Error {
  constructor(message) {
    super(message);
    this.name = "SessionExpired";
  }
}

/** The sign-in page, leading back to where the reader is now. */
export function signInUrl() {
  const here = location.pathname + location.search;
  return `/sign-in?next=${encodeURIComponent(here)}&expired=1`;
}

/** Show the page's "session ended" notice (from base.html), with its link made for here. */
export function showExpired(text) {
  const notice = document.getElementById("session-expired");
  if (!notice) {
    return;
  }
  if (text) {
    notice.querySelector(".session-expired-text").textContent = text;
  }
  notice.querySelector("a").href = signInUrl();
  notice.hidden = false;
  document.body.dataset.session = "expired";
  for (const form of document.querySelectorAll("form[data-draft]")) {
    saveDraft(form);
  }
}

/** fetch() for the pages' scripts: marked as a script's request, and a 401 shows the notice
 * and throws SessionExpired (the caller stops there). */
export async function pageFetch(url, options = {}) {
  const headers = new Headers(options.headers ?? {});
  headers.set("X-Requested-With", "fetch");
  const response = await fetch(url, { ...options, headers });
  if (response.status === 401) {
    const body = await response.json().catch(() => ({}));
    showExpired(body.detail);
    throw new SessionExpired(body.detail ?? "401");
  }
  return response;
}

// POSTs a page's form for a JSON answer, with the session's CSRF token in a header: the
// response and its body ({} when it has none). Not form.action: a form with a field named
// "action" shadows the property.
export async function postForm(form, csrf) {
  const response = await pageFetch(form.getAttribute("action"), {
    method: "POST",
    body: new FormData(form),
    headers: { Accept: "application/json", "X-CSRF-Token": csrf },
  });
  const body = await response.json().catch(() => ({}));
  return { response, body };
}

// --- drafts of filled forms ------------------------------------------------------------------

function draftKey(form) {
  return `${DRAFT_PREFIX}${location.pathname}#${form.id || form.getAttribute("action")}`;
}

function kept(element) {
  return element.name && !["hidden", "password", "file", "submit", "button"].includes(element.type);
}

export function saveDraft(form) {
  const values = [];
  for (const element of form.elements) {
    if (!kept(element)) {
      continue;
    }
    if (element.type === "checkbox" || element.type === "radio") {
      if (element.checked) {
        values.push({ name: element.name, value: element.value, checked: true });
      }
    } else if (element.type === "select-multiple") {
      const chosen = [...element.selectedOptions].map((option) => option.value);
      values.push({ name: element.name, value: chosen });
    } else {
      values.push({ name: element.name, value: element.value });
    }
  }
  sessionStorage.setItem(draftKey(form), JSON.stringify(values));
}

function restoreDraft(form, values) {
  const checkable = form.querySelectorAll('input[type="checkbox"], input[type="radio"]');
  checkable.forEach((box) => {
    if (kept(box)) {
      box.checked = false;
    }
  });
  const seen = new Map();
  for (const item of values) {
    if (item.checked) {
      for (const box of checkable) {
        if (box.name === item.name && box.value === item.value) {
          box.checked = true;
        }
      }
      continue;
    }
    const same = [...form.elements].filter((el) => el.name === item.name && kept(el));
    const index = seen.get(item.name) ?? 0;
    seen.set(item.name, index + 1);
    const element = same[index];
    if (!element) {
      continue;
    }
    if (element.type === "select-multiple") {
      for (const option of element.options) {
        option.selected = item.value.includes(option.value);
      }
    } else {
      element.value = item.value;
    }
  }
  form.dispatchEvent(new Event("change", { bubbles: true }));
}

function keepDrafts() {
  const forms = [...document.querySelectorAll("form[data-draft]")];
  const here = new Set(forms.map(draftKey));
  const onSignIn = location.pathname === "/sign-in";
  // A form sent from another page: on the sign-in page it was interrupted (kept for the way
  // back); anywhere else the server took it (this is the page it led to).
  for (let i = sessionStorage.length - 1; i >= 0; i--) {
    const key = sessionStorage.key(i);
    if (key?.startsWith(DRAFT_PREFIX) && key.endsWith(SENT_SUFFIX)) {
      const draft = key.slice(0, -SENT_SUFFIX.length);
      if (onSignIn) {
        sessionStorage.setItem(draft + INTERRUPTED_SUFFIX, "1");
        sessionStorage.removeItem(key);
      } else if (!here.has(draft)) {
        sessionStorage.removeItem(draft);
        sessionStorage.removeItem(key);
      }
    }
  }
  for (const form of forms) {
    const key = draftKey(form);
    const sent = sessionStorage.getItem(key + SENT_SUFFIX);
    sessionStorage.removeItem(key + SENT_SUFFIX);
    sessionStorage.removeItem(key + INTERRUPTED_SUFFIX);
    const fresh = form.dataset.fresh !== undefined;
    if (sent && fresh) {
      // sent, and the page came back by itself (a redirect after saving): nothing to keep
      sessionStorage.removeItem(key);
    }
    const stored = sessionStorage.getItem(key);
    // a form the server filled in again (refused, with its reasons) shows what was sent
    if (stored && fresh) {
      try {
        restoreDraft(form, JSON.parse(stored));
        const note = document.getElementById("draft-restored");
        if (note) {
          note.hidden = false;
        }
        form.dataset.restored = "true";
      } catch {
        sessionStorage.removeItem(key);
      }
    }
    form.addEventListener("input", () => saveDraft(form));
    form.addEventListener("change", () => saveDraft(form));
    form.addEventListener("submit", () => {
      saveDraft(form);
      sessionStorage.setItem(key + SENT_SUFFIX, "1");
    });
  }
  const discard = document.getElementById("draft-discard");
  discard?.addEventListener("click", () => {
    forms.forEach((form) => sessionStorage.removeItem(draftKey(form)));
    location.reload();
  });
}

keepDrafts();
