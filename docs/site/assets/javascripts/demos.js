// The two demos placed beside their notes by the site's hook: the reparameterisation (note 04)
// and the KL of each latent dimension of the shipped default model (note 09).
(function () {
  "use strict";
  const N = window.numpyvaeNet;
  window.numpyvaeDemos = window.numpyvaeDemos || {};

  function arrow(g, x0, y0, x1, y1) {
    const a = Math.atan2(y1 - y0, x1 - x0), h = Math.min(7, Math.hypot(x1 - x0, y1 - y0) / 2);
    g.beginPath(); g.moveTo(x0, y0); g.lineTo(x1, y1);
    g.lineTo(x1 - h * Math.cos(a - 0.45), y1 - h * Math.sin(a - 0.45));
    g.moveTo(x1, y1); g.lineTo(x1 - h * Math.cos(a + 0.45), y1 - h * Math.sin(a + 0.45));
    g.stroke();
  }

  // ---------------------------------------------------------------- reparameterisation
  const rep = document.getElementById("numpyvae-demo-reparam");
  if (rep) {
    const cv = rep.querySelector("canvas"), g = cv.getContext("2d"), R = 4;
    const px = z => [(z[0] + R) / (2 * R) * cv.width, (R - z[1]) / (2 * R) * cv.height];
    const S = {mu: [0, 0], v: [0, 0], eps: [], rng: N.rng(4)};
    const draw12 = () => { S.eps = Array.from({length: 12}, () => [S.rng.normal(), S.rng.normal()]); };
    const sigma = () => S.v.map(v => Math.exp(v / 2));
    const samples = () => S.eps.map(e => [0, 1].map(j => S.mu[j] + sigma()[j] * e[j]));      // (4.1)
    const dzdv = () => S.eps.map(e => [0, 1].map(j => e[j] * sigma()[j] / 2));                // (4.2)
    function draw() {
      const s = sigma(), [ox, oy] = px([0, 0]), unit = cv.width / (2 * R);
      g.fillStyle = "#fff"; g.fillRect(0, 0, cv.width, cv.height);
      g.strokeStyle = "#ccc"; g.lineWidth = 1;
      g.beginPath(); g.moveTo(ox, 0); g.lineTo(ox, cv.height); g.moveTo(0, oy); g.lineTo(cv.width, oy); g.stroke();
      const [mx, my] = px(S.mu);
      g.strokeStyle = "#3f51b5";
      for (const k of [1, 2]) { g.beginPath(); g.ellipse(mx, my, k * s[0] * unit, k * s[1] * unit, 0, 0, 2 * Math.PI); g.stroke(); }
      const zs = samples(), d = dzdv();
      g.strokeStyle = "#e65100"; g.lineWidth = 1.5;
      zs.forEach((z, k) => { const [x, y] = px(z); arrow(g, x, y, x + d[k][0] * unit, y - d[k][1] * unit); });
      g.fillStyle = "#000";
      zs.forEach(z => { const [x, y] = px(z); g.beginPath(); g.arc(x, y, 3.5, 0, 2 * Math.PI); g.fill(); });
      g.fillStyle = "#3f51b5"; g.fillRect(mx - 4, my - 4, 8, 8);
      rep.querySelector("output").textContent = `μ = (${S.mu.map(m => m.toFixed(2)).join(", ")}), ` +
        `σ = (${s.map(v => v.toFixed(2)).join(", ")}); black dots: z_k, orange arrows: ∂z_k/∂v`;
    }
    const inputs = rep.querySelectorAll("input[type=range]");
    function read() {
      for (const el of inputs) { const k = el.dataset.k; S[k.slice(0, -1)][+k.slice(-1)] = +el.value; }
      draw();
    }
    inputs.forEach(el => el.addEventListener("input", read));
    rep.querySelector("button").addEventListener("click", () => { draw12(); draw(); });
    draw12(); read();
    window.numpyvaeDemos.reparam = {
      set(mu, v) {
        inputs.forEach(el => { const k = el.dataset.k; el.value = (k[0] === "m" ? mu : v)[+k.slice(-1)]; });
        read();
      },
      state: S, samples, dzdv,
    };
  }

  // ---------------------------------------------------------------- KL per dimension
  const kl = document.getElementById("numpyvae-demo-kl");
  const M = window.numpyvaeModels && window.numpyvaeModels["mnist-20d"];
  if (kl && M) {
    const bars = kl.querySelector(".numpyvae-kl-bars"), row = kl.querySelector(".numpyvae-kl-row");
    const g = bars.getContext("2d"), Z = M.z_dim, T = M.traversal.length;
    const images = N.b64(M.images, Uint8Array);
    const order = [...Array(Z).keys()].sort((a, b) => M.kl[b] - M.kl[a]);
    const top = Math.max(...M.kl), w = bars.width / Z;
    const S = {dim: order[0]};
    function draw() {
      g.fillStyle = "#fff"; g.fillRect(0, 0, bars.width, bars.height);
      g.font = "12px sans-serif"; g.textAlign = "center";
      order.forEach((j, k) => {
        const h = M.kl[j] / top * (bars.height - 34);
        g.fillStyle = M.activity[j] > 0.01 ? (j === S.dim ? "#e65100" : "#3f51b5") : (j === S.dim ? "#ffb380" : "#c5cae9");
        g.fillRect(k * w + 3, bars.height - 18 - h, w - 6, h);
        g.fillStyle = "#333";
        g.fillText(String(j), k * w + w / 2, bars.height - 4);
        g.fillText(M.kl[j].toFixed(1), k * w + w / 2, bars.height - 22 - h);
      });
    }
    function show(j) {
      S.dim = j;
      const imgs = M.traversal.map((_, t) =>
        Float64Array.from(images.subarray(784 * (j * T + t), 784 * (j * T + t + 1)), v => v / 255));
      N.drawDigits(row, imgs);
      kl.querySelector("output").textContent = `dimension ${j}: KL ${M.kl[j].toFixed(3)} nats, ` +
        `A = Var(μ_j) ${M.activity[j].toFixed(3)}; z_${j} = ${M.traversal[0]} … ${M.traversal[T - 1]}, ` +
        `total KL ${M.kl.reduce((a, b) => a + b, 0).toFixed(2)} nats, ` +
        `${M.activity.filter(a => a > 0.01).length} of ${Z} dimensions active`;
      draw();
    }
    const pick = e => {
      const r = bars.getBoundingClientRect(), k = Math.floor((e.clientX - r.left) / r.width * Z);
      if (k >= 0 && k < Z && order[k] !== S.dim) show(order[k]);
    };
    bars.addEventListener("pointermove", pick);
    bars.addEventListener("pointerdown", pick);
    show(order[0]);
    window.numpyvaeDemos.kl = {show, state: S, kl: M.kl, order, checkpoint: M.checkpoint};
  }
})();
