// Plays one manifest in headless Debian chromium with hls.js or dash.js and reports, as one JSON
// line on stdout: whether currentTime advanced by at least `need` seconds, the player errors, and
// whether the decoded picture is a picture (not one flat colour). Saves a screenshot.
//
// usage: node play.mjs <hls|dash|file> <URL> <screenshot.png> [need_s=2] [timeout_s=40]
// `file`: the URL is a media file (file:// or http://) that chromium opens by itself, as `<video
// src>` does; the result then also gives its duration and where playback began.
import { chromium } from 'playwright-core';
import { readFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const [lib, url, shot, needArg, timeoutArg] = process.argv.slice(2);
const need = Number(needArg ?? 2);
const timeoutS = Number(timeoutArg ?? 40);
const here = dirname(fileURLToPath(import.meta.url));
const libFile = lib === 'hls'
  ? join(here, 'node_modules/hls.js/dist/hls.min.js')
  : join(here, 'node_modules/dashjs/dist/dash.all.min.js');

// A fresh profile directory every run (playwright passes it as --user-data-dir).
const browser = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'edgerec-chromium-')), {
  executablePath: '/usr/bin/chromium',
  headless: true,
  viewport: { width: 640, height: 400 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync',
         '--autoplay-policy=no-user-gesture-required', '--allow-file-access-from-files'],
});
let result;
try {
  const page = browser.pages()[0] ?? await browser.newPage();
  const logs = [];
  page.on('console', (m) => { if (process.env.PLAY_DEBUG) console.error(m.text()); if (m.type() === 'error') logs.push(m.text()); });
  page.on('pageerror', (e) => logs.push(String(e)));
  if (lib === 'file') {
    await page.goto(url);
    await page.evaluate(() => {
      window.playerErrors = [];
      const v = document.querySelector('video');
      v.muted = true;
      v.addEventListener('error', () => window.playerErrors.push(`media error ${v.error && v.error.code}`));
      v.play().catch((e) => window.playerErrors.push(String(e)));
    });
  } else {
  await page.setContent('<html><body style="margin:0;background:#000">' +
    '<video id="v" muted autoplay playsinline style="width:640px;height:360px"></video></body></html>');
  await page.addScriptTag({ content: readFileSync(libFile, 'utf8') });
  await page.evaluate(([lib, url, process_debug]) => {
    const v = document.querySelector('video');
    window.playerErrors = [];
    if (lib === 'hls') {
      const h = new Hls({ debug: false });
      h.on(Hls.Events.ERROR, (_, d) => { if (d.fatal) window.playerErrors.push(`${d.type}: ${d.details}`); });
      h.loadSource(url);
      h.attachMedia(v);
      h.on(Hls.Events.MANIFEST_PARSED, () => v.play());
    } else {
      const p = dashjs.MediaPlayer().create();
      p.updateSettings({ debug: { logLevel: process_debug } });
      p.on(dashjs.MediaPlayer.events.ERROR, (e) => window.playerErrors.push(JSON.stringify(e.error ?? e)));
      p.initialize(v, url, true);
    }
  }, [lib, url, process.env.PLAY_DEBUG ? 5 : 1]);
  }
  // Wait until playback has advanced by `need` seconds from the first moment it moved.
  const deadline = Date.now() + timeoutS * 1000;
  let first = null, now = 0;
  while (Date.now() < deadline) {
    now = await page.evaluate(() => document.querySelector('video').currentTime);
    const errs = await page.evaluate(() => window.playerErrors.length);
    if (errs) break;
    if (first === null && now > 0) first = now;
    if (first !== null && now - first >= need) break;
    await page.waitForTimeout(250);
  }
  const picture = await page.evaluate(() => {
    const v = document.querySelector('video');
    if (!v.videoWidth) return { width: 0, distinct: 0 };
    const c = document.createElement('canvas');
    c.width = 64; c.height = 36;
    const g = c.getContext('2d');
    g.drawImage(v, 0, 0, 64, 36);
    const d = g.getImageData(0, 0, 64, 36).data;
    const colours = new Set();
    for (let i = 0; i < d.length; i += 4) colours.add((d[i] >> 4) << 8 | (d[i + 1] >> 4) << 4 | (d[i + 2] >> 4));
    return { width: v.videoWidth, distinct: colours.size };
  });
  await page.locator('video').screenshot({ path: shot });
  result = {
    advanced: first === null ? 0 : now - first,
    currentTime: now,
    errors: await page.evaluate(() => window.playerErrors),
    consoleErrors: logs,
    videoWidth: picture.width,
    distinctColours: picture.distinct,
    duration: await page.evaluate(() => document.querySelector('video').duration),
    playedFrom: await page.evaluate(() => { const p = document.querySelector('video').played; return p.length ? p.start(0) : null; }),
    // Chromium's count of decoded audio bytes (0: no sound was decoded; the video is muted for
    // autoplay, which does not stop decoding).
    audioDecodedBytes: await page.evaluate(() => document.querySelector('video').webkitAudioDecodedByteCount ?? null),
  };
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
