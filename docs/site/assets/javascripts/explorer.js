// The latent explorer (explorer.md): the shipped 2-D VAE's decoder, run in the browser.
// The weights and the encoded validation digits come from assets/models/mnist-2d.js, which
// the site's hook exports from the checkpoint. No framework: canvas and pointer events.
(function () {
  "use strict";
  const root = document.getElementById("numpyvae-explorer");
  const M = window.numpyvaeModels && window.numpyvaeModels["mnist-2d"];
  if (!root || !M) return;
  const N = window.numpyvaeNet;

  // the decoder: h = act(h W + b), layer after layer (the last act is the sigmoid: the mean)
  const layers = M.layers.map(L => ({nIn: L.n_in, nOut: L.n_out, act: N.ACT[L.act],
                                     W: N.b64(L.W, Float32Array), b: N.b64(L.b, Float32Array)}));
  function decode(z) {
    let h = Float64Array.from(z);
    for (const L of layers) {
      const out = Float64Array.from(L.b);
      for (let i = 0; i < L.nIn; i++) {
        const hi = h[i], row = i * L.nOut;
        if (hi !== 0) for (let j = 0; j < L.nOut; j++) out[j] += hi * L.W[row + j];
      }
      for (let j = 0; j < L.nOut; j++) out[j] = L.act(out[j]);
      h = out;
    }
    return h;
  }

  const P = M.points, n = P.n;
  const mu = N.b64(P.mu, Float32Array), logvar = N.b64(P.logvar, Float32Array);
  const label = N.b64(P.label, Uint8Array), image = N.b64(P.image, Uint8Array);
  const q = c => root.querySelector(c);
  const plane = q(".numpyvae-plane"), ctx = plane.getContext("2d");
  let R = 3;  // the plane shows [-R, R]^2, wide enough for every point
  for (let i = 0; i < 2 * n; i++) R = Math.max(R, Math.abs(mu[i]) * 1.08);
  const toPx = z => [(z[0] + R) / (2 * R) * plane.width, (R - z[1]) / (2 * R) * plane.height];
  const toZ = p => [p[0] / plane.width * 2 * R - R, R - p[1] / plane.height * 2 * R];
  const S = {cursor: [0, 0], sel: -1, pair: [-1, -1], samples: [], t: 0, rng: N.rng(1)};

  function draw() {
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, plane.width, plane.height);
    ctx.strokeStyle = "#ccc"; ctx.lineWidth = 1;
    const [ox, oy] = toPx([0, 0]), [ux] = toPx([1, 0]);
    ctx.beginPath(); ctx.moveTo(ox, 0); ctx.lineTo(ox, plane.height); ctx.moveTo(0, oy); ctx.lineTo(plane.width, oy);
    ctx.stroke();
    ctx.setLineDash([4, 4]); ctx.beginPath(); ctx.arc(ox, oy, 2 * (ux - ox), 0, 2 * Math.PI); ctx.stroke();
    ctx.setLineDash([]);  // the dashed circle: two standard deviations of the prior N(0, I)
    ctx.globalAlpha = 0.75;
    for (let i = 0; i < n; i++) {
      const [x, y] = toPx([mu[2 * i], mu[2 * i + 1]]);
      ctx.fillStyle = N.COLORS[label[i]]; ctx.fillRect(x - 2, y - 2, 4, 4);
    }
    ctx.globalAlpha = 1;
    const [a, b] = S.pair;
    if (a >= 0 && b >= 0 && a !== b) {
      const pa = toPx([mu[2 * a], mu[2 * a + 1]]), pb = toPx([mu[2 * b], mu[2 * b + 1]]);
      ctx.strokeStyle = "#555"; ctx.beginPath(); ctx.moveTo(...pa); ctx.lineTo(...pb); ctx.stroke();
    }
    if (S.sel >= 0) {
      const i = S.sel, [x, y] = toPx([mu[2 * i], mu[2 * i + 1]]);
      const sx = Math.exp(logvar[2 * i] / 2) / (2 * R) * plane.width;
      const sy = Math.exp(logvar[2 * i + 1] / 2) / (2 * R) * plane.height;
      ctx.strokeStyle = "#000"; ctx.lineWidth = 1.5;
      for (const k of [1, 2]) { ctx.beginPath(); ctx.ellipse(x, y, k * sx, k * sy, 0, 0, 2 * Math.PI); ctx.stroke(); }
      ctx.fillStyle = "#000";
      for (const z of S.samples) { const [u, v] = toPx(z); ctx.fillRect(u - 2.5, v - 2.5, 5, 5); }
    }
    const [cx, cy] = toPx(S.cursor);
    ctx.strokeStyle = "#e01"; ctx.lineWidth = 2;
    ctx.beginPath(); ctx.arc(cx, cy, 7, 0, 2 * Math.PI); ctx.moveTo(cx - 11, cy); ctx.lineTo(cx + 11, cy);
    ctx.moveTo(cx, cy - 11); ctx.lineTo(cx, cy + 11); ctx.stroke();
  }

  function setCursor(z) {
    S.cursor = [z[0], z[1]];
    N.drawDigits(q(".numpyvae-decoded"), [decode(S.cursor)], 1);
    q(".numpyvae-z").textContent = `z = (${z[0].toFixed(2)}, ${z[1].toFixed(2)})`;
    draw();
  }

  function resample() {  // z = mu + sigma * eps, eight fresh eps
    const i = S.sel;
    S.samples = [];
    for (let k = 0; k < 8; k++) {
      S.samples.push([0, 1].map(j => mu[2 * i + j] + Math.exp(logvar[2 * i + j] / 2) * S.rng.normal()));
    }
    N.drawDigits(q(".numpyvae-samples"), S.samples.map(decode), 1);
    draw();
  }

  function select(i) {
    S.sel = i;
    S.pair = [S.pair[1] >= 0 ? S.pair[1] : i, i];
    const x = Float64Array.from(image.subarray(784 * i, 784 * (i + 1)), v => v / 255);
    N.drawDigits(q(".numpyvae-original"), [x], 1);
    const s = [0, 1].map(j => Math.exp(logvar[2 * i + j] / 2).toFixed(3));
    q(".numpyvae-sel").textContent = `label ${label[i]}, μ = (${mu[2 * i].toFixed(2)}, ` +
      `${mu[2 * i + 1].toFixed(2)}), σ = (${s[0]}, ${s[1]})`;
    resample();
  }

  function along(t) {  // the slider: z = (1 - t) mu_a + t mu_b
    const [a, b] = S.pair;
    S.t = t;
    if (a >= 0 && b >= 0) setCursor([0, 1].map(j => (1 - t) * mu[2 * a + j] + t * mu[2 * b + j]));
  }

  const pos = e => {
    const r = plane.getBoundingClientRect();
    return [(e.clientX - r.left) / r.width * plane.width, (e.clientY - r.top) / r.height * plane.height];
  };
  function nearest(p) {  // the point under the pointer (within 8 canvas pixels), or -1
    let best = -1, d2 = 64;
    for (let i = 0; i < n; i++) {
      const [x, y] = toPx([mu[2 * i], mu[2 * i + 1]]), d = (x - p[0]) ** 2 + (y - p[1]) ** 2;
      if (d < d2) { d2 = d; best = i; }
    }
    return best;
  }
  let dragging = false;
  plane.addEventListener("pointerdown", e => {
    const p = pos(e), i = nearest(p);
    dragging = true;
    plane.setPointerCapture(e.pointerId);
    if (i >= 0) select(i);
    setCursor(toZ(p));
  });
  plane.addEventListener("pointermove", e => { if (dragging) setCursor(toZ(pos(e))); });
  for (const ev of ["pointerup", "pointercancel"]) plane.addEventListener(ev, () => { dragging = false; });
  q(".numpyvae-resample").addEventListener("click", () => { if (S.sel >= 0) resample(); });
  q(".numpyvae-slider").addEventListener("input", e => along(e.target.value / 1000));

  q(".numpyvae-legend").innerHTML = N.COLORS.map((c, d) =>
    `<span><i style="background:${c}"></i>${d}</span>`).join("");
  // start with two digits chosen (the first 1 and the first 0), the cursor at the prior's mean
  select(label.indexOf(1));
  select(label.indexOf(0));
  setCursor([0, 0]);

  window.numpyvaeExplorer = {
    decode: z => Array.from(decode(z)),
    checkpoint: M.checkpoint,
    state: S,
    // client coordinates of validation point i on the plane (the tests click it)
    pointOnScreen(i) {
      const r = plane.getBoundingClientRect(), [x, y] = toPx([mu[2 * i], mu[2 * i + 1]]);
      return [r.left + x / plane.width * r.width, r.top + y / plane.height * r.height];
    },
  };
})();
