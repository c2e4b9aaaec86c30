// edgerec's browser page: cameras and their state, a day timeline per camera drawn from
// availableMedia (gaps, events, EVR clips), HLS playback from any moment with hls.js, live, and
// MP4 export of a range. Plain JavaScript against the recorder's own HTTP API; all times are UTC.
'use strict';

const $ = (s) => document.querySelector(s);
const DAY = 86400000;
const state = {
  token: sessionStorage.getItem('edgerec-token') || '',
  cameras: [],
  camera: null,     // selected camera object from /api/cameras
  day: null,        // ms, UTC midnight of the chosen day
  spans: [],        // [[startMs, endMs]] of media on the day
  view: null,       // [fromMs, toMs] shown on the timeline
  hls: null,
  mode: null,       // 'vod' or 'live'
};
window.edgerec = state; // for the tests and the curious

// ---- HTTP -------------------------------------------------------------------------------------

class NeedToken extends Error {}

async function api(path, opts = {}) {
  const headers = state.token ? { Authorization: `Bearer ${state.token}` } : {};
  const r = await fetch(path, { ...opts, headers });
  if (r.status === 401) throw new NeedToken();
  if (!r.ok) {
    const j = await r.json().catch(() => null);
    throw new Error(j?.error?.message ?? `${r.status} ${r.statusText}`);
  }
  return opts.method === 'HEAD' ? r : r.json();
}

/** A URL that carries the token in its query, for what the browser loads by itself. */
function withToken(url) {
  if (!state.token) return url;
  return url + (url.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(state.token);
}

const iso = (ms) => new Date(ms).toISOString();
const enc = encodeURIComponent;
const content = (cam) => `/${enc(cam)}/content.ism`;

// ---- cameras ----------------------------------------------------------------------------------

async function loadCameras() {
  const j = await api('/api/cameras');
  state.cameras = j.cameras;
  const u = j.uplink;
  $('#uplink').textContent = u
    ? `uplink ${u.state}, backlog ${u.backlogSegments} segments (${mib(u.backlogBytes)})` +
      (u.lastError ? ` — ${u.lastError}` : '')
    : 'no upload configured';
  renderCameras();
  if (!state.camera && state.cameras.length) await selectCamera(state.cameras[0].id);
  else if (state.camera) state.camera = state.cameras.find((c) => c.id === state.camera.id) ?? state.camera;
}

const mib = (b) => `${(b / 1048576).toFixed(1)} MiB`;

function renderCameras() {
  const nav = $('#cameras');
  nav.replaceChildren(...state.cameras.map((c) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'camera';
    b.dataset.camera = c.id;
    b.setAttribute('aria-current', String(state.camera?.id === c.id));
    const badges = [
      badge(c.recording ? 'recording' : 'not recording', c.recording ? 'ok' : 'bad'),
      badge(c.connected ? 'connected' : 'disconnected', c.connected ? 'ok' : 'bad'),
      badge(c.mode.toUpperCase(), ''),
    ];
    if (c.mode === 'evr') badges.push(badge(c.clipOpen ? 'clip open' : 'no clip open', c.clipOpen ? 'open-clip' : ''));
    if (c.uploadBacklog) {
      badges.push(badge(`backlog ${c.uploadBacklog.segments} (${mib(c.uploadBacklog.bytes)})`,
        c.uploadBacklog.segments ? '' : 'ok'));
    }
    const id = document.createElement('div');
    id.className = 'id';
    id.textContent = c.id;
    const last = document.createElement('div');
    last.className = 'muted';
    last.textContent = c.lastMediaTime ? `last media ${c.lastMediaTime}` : 'no media';
    b.append(id, ...badges, last);
    b.onclick = () => selectCamera(c.id).catch(show);
    return b;
  }));
}

function badge(text, cls) {
  const s = document.createElement('span');
  s.className = `badge ${cls}`;
  s.textContent = text;
  return s;
}

async function selectCamera(id) {
  if (state.camera?.id !== id && state.hls) {
    // Another camera: stop what the player shows of the previous one.
    state.hls.destroy();
    state.hls = null;
    $('#video').removeAttribute('src');
    $('#video').load();
    $('#playing').textContent = '';
  }
  state.camera = state.cameras.find((c) => c.id === id);
  renderCameras();
  $('#viewer').hidden = false;
  $('#camera-name').textContent = id;
  await loadMonths();
}

// ---- days -------------------------------------------------------------------------------------

/** Expands availableMedia ranges of months (`YYYY-MM`) or days (`YYYY-MM-DD`) to each unit. */
function expand(ranges, unit) {
  const out = [];
  for (const r of ranges) {
    const d = new Date(r.start + (unit === 'month' ? '-01' : '') + 'T00:00:00Z');
    const end = new Date(r.end + (unit === 'month' ? '-01' : '') + 'T00:00:00Z');
    while (d <= end) {
      out.push(d.toISOString().slice(0, unit === 'month' ? 7 : 10));
      if (unit === 'month') d.setUTCMonth(d.getUTCMonth() + 1); else d.setUTCDate(d.getUTCDate() + 1);
    }
  }
  return out;
}

function fill(select, values) {
  select.replaceChildren(...values.map((v) => new Option(v, v)));
  select.value = values[values.length - 1] ?? '';
}

async function loadMonths() {
  const c = state.camera;
  if (!c.lastMediaTime) { fill($('#month'), []); fill($('#day'), []); clearTimeline(); return; }
  const last = new Date(c.lastMediaTime);
  const first = new Date(Math.max(new Date(c.firstMediaTime), Date.UTC(last.getUTCFullYear(), last.getUTCMonth() - 11, 1)));
  const j = await api(`${content(c.id)}/availableMedia?precision=month&startTime=${iso(+first).slice(0, 7)}&endTime=${iso(+last).slice(0, 7)}`);
  fill($('#month'), expand(j.timeRanges, 'month'));
  await loadDays();
}

async function loadDays() {
  const m = $('#month').value;
  if (!m) return;
  const start = new Date(`${m}-01T00:00:00Z`);
  const end = new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + 1, 0));
  const j = await api(`${content(state.camera.id)}/availableMedia?precision=day&startTime=${m}-01&endTime=${iso(+end).slice(0, 10)}`);
  fill($('#day'), expand(j.timeRanges, 'day'));
  await loadDay();
}

// ---- the timeline -----------------------------------------------------------------------------

async function loadDay() {
  const d = $('#day').value;
  if (!d) return clearTimeline();
  state.day = Date.parse(`${d}T00:00:00Z`);
  const from = iso(state.day), to = iso(state.day + DAY);
  const cam = state.camera;
  const q = `startTime=${enc(from)}&endTime=${enc(to)}`;
  const [media, events, clips] = await Promise.all([
    api(`${content(cam.id)}/availableMedia?precision=full&${q}`),
    api(`/api/events?camera=${enc(cam.id)}&${q}`).catch(() => ({ events: [] })),
    cam.mode === 'evr' ? api(`/api/cameras/${enc(cam.id)}/clips?${q}`) : Promise.resolve({ clips: [] }),
  ]);
  state.spans = media.timeRanges.map((r) => [Date.parse(r.start), Date.parse(r.end)]);
  state.events = events.events ?? [];
  state.clips = clips.clips ?? [];
  fit();
}

function clearTimeline() {
  state.spans = []; state.events = []; state.clips = [];
  state.view = null;
  drawTimeline();
}

/** Shows the day's media with a margin (at least 2 minutes). */
function fit() {
  if (!state.spans.length) { state.view = [state.day, state.day + DAY]; return drawTimeline(); }
  let a = state.spans[0][0], b = state.spans[state.spans.length - 1][1];
  const pad = Math.max((b - a) * 0.03, 5000);
  a -= pad; b += pad;
  if (b - a < 120000) { const m = (a + b) / 2; a = m - 60000; b = m + 60000; }
  state.view = [Math.max(a, state.day), Math.min(b, state.day + DAY)];
  drawTimeline();
}

function zoom(f, around) {
  if (!state.view) return;
  const [a, b] = state.view;
  const c = around ?? (a + b) / 2;
  const w = Math.min(Math.max((b - a) * f, 10000), DAY);
  let na = c - (c - a) * (w / (b - a));
  na = Math.min(Math.max(na, state.day), state.day + DAY - w);
  state.view = [na, na + w];
  drawTimeline();
}

const pct = (t) => ((t - state.view[0]) / (state.view[1] - state.view[0])) * 100;

function bar(cls, a, b, data) {
  const el = document.createElement('div');
  el.className = cls;
  el.style.left = `${pct(a)}%`;
  el.style.width = `${Math.max(pct(b) - pct(a), 0)}%`;
  el.dataset.start = iso(a);
  el.dataset.end = iso(b);
  Object.assign(el.dataset, data ?? {});
  el.title = `${cls} ${iso(a)} – ${iso(b)}`;
  return el;
}

function drawTimeline() {
  const media = $('#lane-media'), marks = $('#lane-marks'), axis = $('#axis');
  if (!state.view) { media.replaceChildren(); marks.replaceChildren(); axis.replaceChildren(); return; }
  const [v0, v1] = state.view;
  const shown = (a, b) => b > v0 && a < v1;
  const els = [];
  state.spans.forEach(([a, b], i) => {
    if (shown(a, b)) els.push(bar('media', a, b));
    const next = state.spans[i + 1];
    if (next && shown(b, next[0])) els.push(bar('gap', b, next[0]));
  });
  media.replaceChildren(...els);
  const m = [];
  for (const c of state.clips) {
    const a = Date.parse(c.requestedStart), b = Date.parse(c.requestedEnd);
    if (shown(a, b)) m.push(bar('clip', a, b, { clip: c.id }));
  }
  for (const e of state.events) {
    const t = Date.parse(e.time);
    if (!shown(t, t + 1)) continue;
    const el = bar('event', t, t);
    el.style.width = '';
    el.title = `${e.label} at ${e.time}`;
    m.push(el);
  }
  marks.replaceChildren(...m);
  // Axis: about 8 labels at round steps.
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600].map((s) => s * 1000);
  const step = steps.find((s) => (v1 - v0) / s <= 8) ?? 21600000;
  const labels = [];
  for (let t = Math.ceil(v0 / step) * step; t <= v1; t += step) {
    const s = document.createElement('span');
    s.style.left = `${pct(t)}%`;
    s.textContent = iso(t).slice(11, step < 60000 ? 19 : 16);
    labels.push(s);
  }
  axis.replaceChildren(...labels);
  drawPlayhead();
}

function timeAt(ev) {
  const r = $('#timeline').getBoundingClientRect();
  const f = Math.min(Math.max((ev.clientX - r.left) / r.width, 0), 1);
  return state.view[0] + f * (state.view[1] - state.view[0]);
}

/** The moment to play for a click at `t`: in a gap, the start of the media after it. */
function snap(t) {
  for (const [a, b] of state.spans) {
    if (t < a) return a;
    if (t < b) return t;
  }
  return null;
}

// ---- playback ---------------------------------------------------------------------------------

function newHls() {
  if (state.hls) state.hls.destroy();
  const h = new Hls({ autoStartLoad: false });
  h.on(Hls.Events.ERROR, (_, d) => { if (d.fatal) show(new Error(`player: ${d.type} ${d.details}`)); });
  h.attachMedia($('#video'));
  state.hls = h;
  return h;
}

/** Plays from `t` (ms, UTC): a VoD manifest from there to now (at most 24 h), started at `t`. */
function playFrom(t) {
  const cam = state.camera.id;
  const end = Math.min(t + DAY - 1000, Date.now());
  if (end - t < 2000) return playLive();
  const url = `${content(cam)}/manifest(format=m3u8-aapl,startTime=${iso(t)},endTime=${iso(end)}).m3u8`;
  const h = newHls();
  state.mode = 'vod';
  state.requested = t;
  h.once(Hls.Events.LEVEL_LOADED, (_, d) => {
    // The manifest starts with the fragment holding `t`; start inside it, at `t`.
    const first = d.details.fragments[0]?.programDateTime;
    h.startLoad(first ? Math.max((t - first) / 1000, 0) : -1);
  });
  h.once(Hls.Events.MANIFEST_PARSED, () => $('#video').play().catch(() => {}));
  h.loadSource(withToken(url));
  setExport(t, Math.min(t + 300000, end));
}

function playLive() {
  const h = newHls();
  state.mode = 'live';
  h.once(Hls.Events.MANIFEST_PARSED, () => { h.startLoad(-1); $('#video').play().catch(() => {}); });
  h.loadSource(withToken(`${content(state.camera.id)}/manifest(format=m3u8-aapl).m3u8`));
}

function drawPlayhead() {
  const p = $('#playhead');
  const d = state.hls?.playingDate;
  if (!d || !state.view || +d < state.view[0] || +d > state.view[1]) { p.hidden = true; return; }
  p.hidden = false;
  p.style.left = `${pct(+d)}%`;
}

setInterval(() => {
  const d = state.hls?.playingDate;
  $('#playing').textContent = d ? `${state.mode === 'live' ? 'live, ' : ''}playing ${iso(+d)}` : '';
  drawPlayhead();
}, 250);

// ---- export -----------------------------------------------------------------------------------

function setExport(a, b) {
  $('#from').value = iso(a).replace('.000Z', 'Z');
  $('#to').value = iso(b).replace('.000Z', 'Z');
}

async function download(ev) {
  ev.preventDefault();
  $('#export-error').textContent = '';
  const url = `${content(state.camera.id)}/export.mp4?startTime=${enc($('#from').value.trim())}&endTime=${enc($('#to').value.trim())}`;
  try {
    const r = await fetch(url, { method: 'HEAD', headers: state.token ? { Authorization: `Bearer ${state.token}` } : {} });
    if (!r.ok) { await api(url); return; } // a GET gives the error's message
    const a = document.createElement('a');
    a.href = withToken(url);
    a.download = '';
    document.body.append(a);
    a.click();
    a.remove();
  } catch (e) {
    $('#export-error').textContent = e.message;
  }
}

// ---- wiring -----------------------------------------------------------------------------------

function show(e) {
  if (e instanceof NeedToken) return askToken();
  $('#message').textContent = e.message;
}

function askToken() {
  $('#app').hidden = true;
  $('#login').hidden = false;
  $('#login-error').textContent = state.token ? 'That token was not accepted.' : '';
  $('#token').focus();
}

async function start() {
  try {
    if (!state.config) {
      state.config = await (await fetch('ui/config.json')).json();
      $('#version').textContent = `edgerec ${state.config.version}`;
    }
    if (state.config.tokenRequired && !state.token) return askToken();
    await loadCameras();
    $('#login').hidden = true;
    $('#app').hidden = false;
  } catch (e) {
    show(e);
  }
}

$('#login').onsubmit = (ev) => {
  ev.preventDefault();
  state.token = $('#token').value.trim();
  sessionStorage.setItem('edgerec-token', state.token);
  start();
};
$('#month').onchange = () => loadDays().catch(show);
$('#day').onchange = () => loadDay().catch(show);
$('#zoom-fit').onclick = fit;
$('#zoom-day').onclick = () => { state.view = [state.day, state.day + DAY]; drawTimeline(); };
$('#zoom-in').onclick = () => zoom(0.5);
$('#zoom-out').onclick = () => zoom(2);
$('#live').onclick = () => playLive();
$('#export').onsubmit = download;
$('#timeline').addEventListener('wheel', (ev) => { ev.preventDefault(); zoom(ev.deltaY > 0 ? 1.25 : 0.8, timeAt(ev)); }, { passive: false });
$('#timeline').onclick = (ev) => {
  if (!state.view) return;
  const t = timeAt(ev);
  if (ev.shiftKey) { $('#to').value = iso(t); return; }
  const s = snap(t);
  if (s !== null) playFrom(s);
};
setInterval(() => { if (!$('#app').hidden) loadCameras().catch(show); }, 5000);
start();
