// What the explorer and the demos share: arrays from base64, activations, a seeded normal
// generator, and digits drawn on a canvas.
(function () {
  "use strict";
  function b64(s, Type) {  // little-endian bytes, as the site's hook wrote them
    const bin = atob(s), u = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) u[i] = bin.charCodeAt(i);
    return new Type(u.buffer);
  }
  const ACT = {
    relu: v => (v > 0 ? v : 0), leaky_relu: v => (v > 0 ? v : 0.01 * v), tanh: Math.tanh,
    sigmoid: v => 0.5 + 0.5 * Math.tanh(0.5 * v),  // as numpyvae writes it: never overflows
    softplus: v => (v > 30 ? v : Math.log1p(Math.exp(v))), identity: v => v,
  };
  function rng(seed) {  // mulberry32, and Box-Muller for N(0, 1)
    let a = seed >>> 0;
    const uniform = () => {
      a = (a + 0x6D2B79F5) >>> 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    return {uniform, normal: () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform())};
  }
  const cell = document.createElement("canvas");
  cell.width = cell.height = 28;
  // images (each 784 values in [0, 1]) side by side, dark ink on white, filling the canvas
  function drawDigits(canvas, images) {
    const g = canvas.getContext("2d"), c = cell.getContext("2d"), img = c.createImageData(28, 28);
    const w = canvas.width / images.length;
    g.imageSmoothingEnabled = false;
    images.forEach((x, k) => {
      for (let p = 0; p < 784; p++) {
        const v = 255 * (1 - Math.min(1, Math.max(0, x[p])));
        img.data.set([v, v, v, 255], 4 * p);
      }
      c.putImageData(img, 0, 0);
      g.drawImage(cell, k * w, 0, w, canvas.height);
    });
  }
  const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                  "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  window.numpyvaeNet = {b64, ACT, rng, drawDigits, COLORS};
})();
