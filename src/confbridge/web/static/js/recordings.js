// The occurrence page's recordings: a chapter's button seeks its recording's player there and
// plays it; each button shows the chapter's time.

function clock(seconds) {
  const whole = Math.floor(seconds);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = String(whole % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

for (const button of document.querySelectorAll(".recording .chapter")) {
  button.querySelector(".chapter-time").textContent = clock(Number(button.dataset.startS));
  button.addEventListener("click", () => {
    const video = button.closest(".recording").querySelector("video");
    video.currentTime = Number(button.dataset.startS);
    video.play().catch(() => {});
  });
}
