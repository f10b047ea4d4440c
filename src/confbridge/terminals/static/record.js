// The meeting's record on the kiosk: the agenda item the chair marked current, shown on a band
// at the top of the programme ("Nội dung: 2. Báo cáo ... – Sở Tài chính"), read every few
// seconds from the occurrence's invitation (readable by the invited sites' terminals).

const RECORD_POLL_MS = 5000;

let timer = null;

function band() {
  return document.getElementById("agenda-item");
}

/** Follow occurrence `occurrenceId`'s current agenda item; `api(method, path)` as kiosk.js. */
export function followRecord(occurrenceId, api) {
  stopRecord();
  const refresh = async () => {
    let invitation;
    try {
      invitation = await api("GET", `/api/v1/occurrences/${occurrenceId}/invitation`);
    } catch {
      return;  // kept as shown; the next read may succeed
    }
    const item = (invitation.agenda || []).find((i) => i.id === invitation.current_item_id);
    const presenter = item && (item.presenter || item.presenter_site_name);
    band().textContent = item ? `${item.position}. ${item.title}${presenter ? ` – ${presenter}` : ""}` : "";
    band().hidden = !item;
  };
  refresh();
  timer = setInterval(refresh, RECORD_POLL_MS);
}

/** Stop following (the meeting ended or the hall left it). */
export function stopRecord() {
  clearInterval(timer);
  timer = null;
  band().textContent = "";
  band().hidden = true;
}
