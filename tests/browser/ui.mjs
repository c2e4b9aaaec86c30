// Drives edgerec's own page (GET /) in headless Debian chromium as a user would: enters the
// access token, waits for the camera list and the timeline, clicks on the timeline just after
// the gap, waits until the video plays (currentTime advances, frames decoded), downloads an MP4
// export, and takes a screenshot. Prints one JSON line with what it saw.
//
// usage: node ui.mjs <base URL> <token or ""> <screenshot.png> <download dir>
import { chromium } from 'playwright-core';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [base, token, shot, downloads] = process.argv.slice(2);
const browser = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'edgerec-ui-')), {
  executablePath: '/usr/bin/chromium',
  headless: true,
  acceptDownloads: true,
  viewport: { width: 1100, height: 800 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync',
         '--autoplay-policy=no-user-gesture-required'],
});
const out = { consoleErrors: [], steps: [] };
try {
  const page = browser.pages()[0] ?? await browser.newPage();
  page.on('console', (m) => { if (m.type() === 'error') out.consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => out.consoleErrors.push(String(e)));
  await page.goto(base + '/');
  if (token) {
    await page.waitForSelector('#login:not([hidden])', { timeout: 15000 });
    out.steps.push('asked for a token');
    await page.fill('#token', token);
    await page.click('#login button[type=submit]');
  }
  await page.waitForSelector('.camera', { timeout: 20000 });
  out.cameras = await page.$$eval('.camera', (els) => els.map((e) => ({ id: e.dataset.camera, text: e.innerText })));
  await page.waitForFunction(() => document.querySelectorAll('#lane-media .media').length >= 2, null, { timeout: 20000 });
  out.media = await page.$$eval('#lane-media .media', (els) => els.map((e) => [e.dataset.start, e.dataset.end]));
  out.gaps = await page.$$eval('#lane-media .gap', (els) => els.map((e) => [e.dataset.start, e.dataset.end]));
  // Click 30 % into the second span of media (after the gap).
  const box = await page.locator('#lane-media .media').nth(1).boundingBox();
  const tl = await page.locator('#timeline').boundingBox();
  await page.mouse.click(box.x + box.width * 0.3, tl.y + tl.height / 2);
  out.requested = await page.evaluate(() => window.edgerec.requested);
  const deadline = Date.now() + 40000;
  let first = null, now = 0;
  while (Date.now() < deadline) {
    now = await page.evaluate(() => document.querySelector('#video').currentTime);
    if (first === null && now > 0) first = now;
    if (first !== null && now - first >= 2) break;
    await page.waitForTimeout(250);
  }
  out.advanced = first === null ? 0 : now - first;
  out.frames = await page.evaluate(() => document.querySelector('#video').getVideoPlaybackQuality().totalVideoFrames);
  out.playingDate = await page.evaluate(() => { const d = window.edgerec.hls?.playingDate; return d ? d.toISOString() : null; });
  out.playingText = await page.textContent('#playing');
  // Export what the click selected (from the moment clicked, up to 5 minutes).
  out.exportRange = [await page.inputValue('#from'), await page.inputValue('#to')];
  const [download] = await Promise.all([
    page.waitForEvent('download', { timeout: 30000 }),
    page.click('#export button[type=submit]'),
  ]);
  out.download = join(downloads, download.suggestedFilename() || 'export.mp4');
  await download.saveAs(out.download);
  out.exportError = await page.textContent('#export-error');
  await page.screenshot({ path: shot, fullPage: true });
  // The EVR camera (the second one): its clip and the event that opened it on the timeline.
  await page.click('.camera[data-camera="gate"]');
  await page.waitForFunction(() => document.querySelectorAll('#lane-marks .clip').length >= 1, null, { timeout: 20000 });
  out.gateClips = await page.$$eval('#lane-marks .clip', (els) => els.length);
  out.gateEvents = await page.$$eval('#lane-marks .event', (els) => els.length);
  out.message = await page.textContent('#message');
  await page.screenshot({ path: shot.replace(/\.png$/, '-evr.png'), fullPage: true });
} catch (e) {
  out.error = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
