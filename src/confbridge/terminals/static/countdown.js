// The kiosk's countdown to the next meeting: hours, minutes and seconds within a day, whole
// days and hours beyond (a hall reads "3 ngày 3 giờ", not "75:59:34").

const DAY_S = 86400;
const HOUR_S = 3600;

// `words`: {day, days, hour, hours}, the units in the kiosk's language.
export function countdown(ms, words) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s >= DAY_S) {
    const days = Math.floor(s / DAY_S);
    const hours = Math.floor((s % DAY_S) / HOUR_S);
    const dayText = `${days} ${days === 1 ? words.day : words.days}`;
    return hours ? `${dayText} ${hours} ${hours === 1 ? words.hour : words.hours}` : dayText;
  }
  const h = Math.floor(s / HOUR_S);
  const m = Math.floor((s % HOUR_S) / 60);
  const pad = (n) => String(n).padStart(2, "0");
  return `${h > 0 ? `${h}:` : ""}${pad(m)}:${pad(s % 60)}`;
}
