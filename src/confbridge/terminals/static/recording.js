// The recording indicator on the kiosk's programme: a red dot and "Đang ghi hình" while the
// meeting is recorded, as the floor poll says (GET /api/v1/terminals/me/floor `recording`).

const WORDS = { vi: "Đang ghi hình", en: "Recording" };

/** Show or hide the indicator; `lang` is the page's language ("vi" or "en"). */
export function showRecording(recording, lang = "vi") {
  const badge = document.getElementById("recording");
  badge.querySelector(".recording-text").textContent = WORDS[lang] ?? WORDS.vi;
  badge.hidden = !recording;
  document.body.dataset.recording = String(Boolean(recording));
}
