// The hall's camera and microphone, opened once and kept between sessions, and the self-test
// before a meeting: the camera's picture and a level meter of the microphone.

export let camera = null;  // the MediaStream of the camera and microphone, kept between sessions
let meter = null;

export async function openCamera() {
  if (camera && camera.getTracks().every((track) => track.readyState === "live")) return camera;
  camera = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
  return camera;
}

// `$`, `note`, `fail` and `t` are the kiosk's: its elements, log, error line and words.
export async function selfTest({ $, note, fail, t }) {
  try {
    const stream = await openCamera();
    $("selftest-view").hidden = false;
    $("selftest-stop").hidden = false;
    $("selftest-button").hidden = true;
    $("preview").srcObject = stream;
    if (meter) return;
    const context = new AudioContext();
    const analyser = context.createAnalyser();
    analyser.fftSize = 512;
    context.createMediaStreamSource(stream).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    const bar = $("meter").firstElementChild;
    meter = () => {
      analyser.getFloatTimeDomainData(samples);
      const rms = Math.sqrt(samples.reduce((sum, v) => sum + v * v, 0) / samples.length);
      const level = Math.min(100, Math.round(rms * 300));
      bar.style.width = `${level}%`;
      $("meter").setAttribute("aria-valuenow", String(level));
      requestAnimationFrame(meter);
    };
    requestAnimationFrame(meter);
    note("selftest");
  } catch (error) {
    fail(`${t("no_camera")}: ${error.message}`, t("no_camera"));
  }
}
