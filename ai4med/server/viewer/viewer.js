// ai4med annotation viewer: NIfTI in the browser, three orthogonal views, AIAA calls through a session.
"use strict";
const S = { vol: null, dims: null, idx: [0, 0, 0], mask: null, points: [], bg: [], session: null, models: [],
  busy: false };
const $ = (id) => document.getElementById(id);
const status = (t) => { $("status").textContent = t; };
// the API lives beside the page: "/viewer" -> "", "/aiaa/viewer/" -> "/aiaa" (path-prefixed deployments)
const BASE = location.pathname.replace(/\/viewer\/?(index\.html)?$/, "");

async function gunzipIfNeeded(buf) {
  const b = new Uint8Array(buf);
  if (b[0] !== 0x1f || b[1] !== 0x8b) return buf;
  const ds = new Blob([buf]).stream().pipeThrough(new DecompressionStream("gzip"));
  return await new Response(ds).arrayBuffer();
}

function parseNifti(buf) {
  const dv = new DataView(buf);
  let le = true;
  if (dv.getInt32(0, true) !== 348) { le = false; if (dv.getInt32(0, false) !== 348) throw new Error("not NIfTI-1"); }
  const nd = dv.getInt16(40, le);
  const dims = [1, 1, 1].map((_, i) => (i < nd ? dv.getInt16(42 + 2 * i, le) : 1));
  const type = dv.getInt16(70, le);
  const spacing = [1, 2, 3].map((i) => Math.abs(dv.getFloat32(76 + 4 * i, le)) || 1);
  const off = Math.max(352, Math.round(dv.getFloat32(108, le)));
  let slope = dv.getFloat32(112, le); const inter = dv.getFloat32(116, le);
  if (!slope) slope = 1;
  const n = dims[0] * dims[1] * dims[2];
  const readers = { 2: [1, (o) => dv.getUint8(o)], 4: [2, (o) => dv.getInt16(o, le)], 8: [4, (o) => dv.getInt32(o, le)],
    16: [4, (o) => dv.getFloat32(o, le)], 64: [8, (o) => dv.getFloat64(o, le)], 256: [1, (o) => dv.getInt8(o)],
    512: [2, (o) => dv.getUint16(o, le)], 768: [4, (o) => dv.getUint32(o, le)] };
  if (!readers[type]) throw new Error("unsupported NIfTI datatype " + type);
  const [size, read] = readers[type];
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = read(off + i * size) * slope + inter;
  return { dims, data, spacing };
}

const at = (x, y, z) => x + S.dims[0] * (y + S.dims[1] * z);

// the 2D plane of each view: [horizontal axis, vertical axis]
const PLANE = { 2: [0, 1], 1: [0, 2], 0: [1, 2] };

function draw(axis) {
  const cv = document.querySelector(`canvas[data-axis="${axis}"]`);
  if (!S.vol) return;
  const [ha, va] = PLANE[axis];
  const w = S.dims[ha], h = S.dims[va];
  cv.width = w; cv.height = h;
  // one canvas pixel per voxel, shown in a 320 px box with the voxels' physical aspect ratio
  const wmm = w * S.spacing[ha], hmm = h * S.spacing[va], scale = 320 / Math.max(wmm, hmm);
  cv.style.width = `${Math.round(wmm * scale)}px`; cv.style.height = `${Math.round(hmm * scale)}px`;
  const ctx = cv.getContext("2d");
  const img = ctx.createImageData(w, h);
  const win = +$("win").value, lev = +$("lev").value, lo = lev - win / 2;
  const p = [0, 0, 0];
  p[axis] = S.idx[axis];
  for (let v = 0; v < h; v++) {
    for (let u = 0; u < w; u++) {
      p[ha] = u; p[va] = v;
      const i = at(p[0], p[1], p[2]);
      let g = Math.max(0, Math.min(255, ((S.vol[i] - lo) / win) * 255));
      const o = 4 * ((h - 1 - v) * w + u);
      const m = S.mask && S.mask[i] > 0;
      img.data[o] = m ? 0.5 * g + 127 : g; img.data[o + 1] = m ? 0.5 * g : g; img.data[o + 2] = m ? 0.5 * g : g;
      img.data[o + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
  const mark = (pts, color) => {
    ctx.fillStyle = color;
    for (const q of pts) if (q[axis] === S.idx[axis]) ctx.fillRect(q[ha] - 1, h - 1 - q[va] - 1, 3, 3);
  };
  mark(S.points, "#0f0"); mark(S.bg, "#f0f");
  $("idx-" + axis).textContent = S.idx[axis];
}
const drawAll = () => [0, 1, 2].forEach(draw);

function onClick(ev) {
  if (!S.vol) return;
  const cv = ev.currentTarget, axis = +cv.dataset.axis, [ha, va] = PLANE[axis];
  const r = cv.getBoundingClientRect();
  const u = Math.floor(((ev.clientX - r.left) / r.width) * cv.width);
  const v = cv.height - 1 - Math.floor(((ev.clientY - r.top) / r.height) * cv.height);
  const p = [0, 0, 0]; p[axis] = S.idx[axis]; p[ha] = u; p[va] = v;
  (ev.shiftKey ? S.bg : S.points).push(p);
  S.idx[ha] = u; S.idx[va] = v;
  status(`${S.points.length} point(s), ${S.bg.length} background`);
  drawAll();
}

function onWheel(ev) {
  if (!S.vol) return;
  ev.preventDefault();
  const axis = +ev.currentTarget.dataset.axis;
  if (!ev.deltaY) return;
  S.idx[axis] = Math.max(0, Math.min(S.dims[axis] - 1, S.idx[axis] + (ev.deltaY > 0 ? 1 : -1)));
  draw(axis);
}

// Window/level sliders over the volume's intensity range (2nd-98th percentile of a sample as the start).
function initWindow() {
  const n = S.vol.length, step = Math.max(1, Math.floor(n / 20000)), sample = [];
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < n; i += step) { const x = S.vol[i]; sample.push(x); if (x < lo) lo = x; if (x > hi) hi = x; }
  sample.sort((a, b) => a - b);
  const q = (f) => sample[Math.min(sample.length - 1, Math.floor(f * sample.length))];
  let wlo = q(0.02), whi = q(0.98);
  if (!(whi > wlo)) { wlo = lo; whi = hi > lo ? hi : lo + 1; }
  const range = Math.max(hi - lo, 1e-6), win = $("win"), lev = $("lev");
  win.min = range / 1000; win.max = 2 * range; win.step = "any";
  lev.min = lo - range / 2; lev.max = hi + range / 2; lev.step = "any";
  win.value = whi - wlo; lev.value = (whi + wlo) / 2;
}

function resetResult() {
  S.mask = null;
  const link = $("download");
  if (link.href) URL.revokeObjectURL(link.href);
  link.removeAttribute("href"); link.classList.add("hidden");
}

// Upload the volume once; the model calls then name the session instead of re-sending it.
async function createSession() {
  const fd = new FormData();
  fd.append("image", new Blob([S.raw]), S.fileName);
  const r = await fetch(BASE + "/session/", { method: "PUT", body: fd });
  if (!r.ok) { status("session failed: " + (await r.text())); return false; }
  S.session = (await r.json()).session_id;
  return true;
}

async function openFile(file) {
  status("reading " + file.name);
  const raw = await file.arrayBuffer();
  const nii = parseNifti(await gunzipIfNeeded(raw));
  S.vol = nii.data; S.dims = nii.dims; S.spacing = nii.spacing; S.points = []; S.bg = []; S.session = null;
  resetResult();
  $("run").disabled = true;
  S.idx = S.dims.map((d) => Math.floor(d / 2));
  initWindow();
  drawAll();
  S.raw = raw; S.fileName = file.name;
  if (!(await createSession())) return;
  $("run").disabled = false;
  status(`${file.name} ${S.dims.join("x")} ready (session ${S.session.slice(0, 8)})`);
}

async function loadModels() {
  const r = await fetch(BASE + "/v1/models");
  if (!r.ok) throw new Error(await r.text());
  S.models = await r.json();
  $("model").innerHTML = S.models.filter((m) => m.type !== "classification")
    .map((m) => `<option value="${m.name}">${m.name} (${m.type}${m.deepgrow ? " " + m.deepgrow : ""})</option>`).join("");
}

async function run() {
  const m = S.models.find((x) => x.name === $("model").value);
  if (!m || !S.session || S.busy) return;
  let api = "inference", params = {};
  if (m.type === "annotation") { api = "dextr3d"; params = { points: S.points }; }
  else if (m.type === "deepgrow") {
    api = "deepgrow";
    params = { foreground: S.points, background: S.bg, current_point: S.points.slice(-1) };
  } else if (m.type === "segmentation") api = "segmentation";
  const fd = new FormData();
  fd.append("params", JSON.stringify(params));
  status("running " + m.name + " ...");
  const url = () => `${BASE}/v1/${api}?model=${encodeURIComponent(m.name)}&session_id=${encodeURIComponent(S.session)}`;
  S.busy = true; $("run").disabled = true;
  let r;
  try {
    r = await fetch(url(), { method: "POST", body: fd });
    if (r.status === 440 && (await createSession())) r = await fetch(url(), { method: "POST", body: fd });  // expired
  } finally { S.busy = false; $("run").disabled = false; }
  if (!r.ok) { status("error: " + (await r.text())); return; }
  const form = await r.formData();
  const file = form.get("file");
  const out = JSON.parse(form.get("params") || "{}");
  if (!file) { status("result: " + JSON.stringify(out)); return; }
  const mask = parseNifti(await gunzipIfNeeded(await file.arrayBuffer()));
  if (mask.dims.join() !== S.dims.join()) { status(`error: mask ${mask.dims.join("x")} is not on the volume's grid`); return; }
  resetResult();
  S.mask = mask.data;
  const n = S.mask.reduce((a, v) => a + (v > 0 ? 1 : 0), 0);
  const link = $("download");
  link.href = URL.createObjectURL(file); link.classList.remove("hidden");
  link.download = /\.nii$/i.test(file.name || "") ? "mask.nii" : "mask.nii.gz";
  status(`done: ${n} voxels` + (out.points ? `, ${out.points.length} extreme points` : ""));
  drawAll();
}

window.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("canvas").forEach((c) => { c.addEventListener("click", onClick); c.addEventListener("wheel", onWheel); });
  $("file").addEventListener("change", (e) => e.target.files[0] && openFile(e.target.files[0]).catch((x) => status("error: " + x)));
  $("win").addEventListener("input", drawAll); $("lev").addEventListener("input", drawAll);
  $("run").addEventListener("click", () => run().catch((x) => status("error: " + x)));
  $("clear").addEventListener("click", () => { S.points = []; S.bg = []; drawAll(); status("points cleared"); });
  loadModels().catch((x) => status("cannot list models: " + x));
});
