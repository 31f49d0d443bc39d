/** Attention cues: a short WebAudio chime (mutable, per browser) and "(N) chatire" in the title while unfocused. */

const BASE_TITLE = "chatire";
const MUTED_KEY = "chatire.muted";
let audio = null;
let lastChime = 0;

/** Browsers only allow audio after a user gesture: create the context on the first one. */
function unlock() {
  if (audio) {
    if (audio.state === "suspended") audio.resume().catch(() => {});
    return;
  }
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!Ctx) return;
  try { audio = new Ctx(); } catch { audio = null; }
}
for (const type of ["pointerdown", "keydown"]) window.addEventListener(type, unlock, { capture: true, passive: true });

let mutedHere = false; // the choice when storage is disabled

/** Whether the user muted the chime in this browser (any tab). */
export function muted() {
  try { return localStorage.getItem(MUTED_KEY) === "1"; } catch { return mutedHere; }
}

/** Mute or unmute the chime; remembered in this browser (localStorage). */
export function setMuted(value) {
  try {
    if (value) localStorage.setItem(MUTED_KEY, "1");
    else localStorage.removeItem(MUTED_KEY);
  } catch { /* storage disabled: the choice lasts as long as the page */ }
  mutedHere = Boolean(value);
}

/** Play a soft two-note chime (at most one a second), unless muted. */
export function chime() {
  if (muted()) return;
  const now = Date.now();
  if (!audio || audio.state !== "running" || now - lastChime < 1000) return;
  lastChime = now;
  const t0 = audio.currentTime;
  for (const [i, freq] of [880, 1320].entries()) {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.type = "sine";
    osc.frequency.value = freq;
    const start = t0 + i * 0.09;
    gain.gain.setValueAtTime(0.0001, start);
    gain.gain.exponentialRampToValueAtTime(0.12, start + 0.015);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.22);
    osc.connect(gain).connect(audio.destination);
    osc.start(start);
    osc.stop(start + 0.25);
  }
}

/** Whether the reader is looking at this tab right now. */
export function attentive() {
  return document.visibilityState === "visible" && document.hasFocus();
}

/** Show the unread total in the title while the window is not focused. */
export function setTitleCount(count) {
  const title = count > 0 && !attentive() ? `(${count > 99 ? "99+" : count}) ${BASE_TITLE}` : BASE_TITLE;
  if (document.title !== title) document.title = title;
}
