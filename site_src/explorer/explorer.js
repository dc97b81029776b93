// The latent-space explorer: for each <div class="minivae-explorer" data-src="FILE.json">,
// load the file `minivae export` wrote, and decode z in the browser (decoder.js) as the user
// drags a slider per latent dimension, clicks in the scatter of the test codes, or moves
// along the line between two test examples. window.minivaeExplorers[id] exposes each one.
"use strict";

(function () {
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                   "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  const SCATTER = 320;          // px, the scatter's side
  const IMAGE = 224;            // px, the decoded image's side
  const STEPS = 9;              // images on the interpolation strip
  window.minivaeExplorers = {};

  function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "text") e.textContent = v; else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  }

  // Draw decoded pixels x (values in [0, 1]; image_shape [H, W] or [C, H, W]) on a canvas.
  function drawImage(canvas, x, shape) {
    const [C, H, W] = shape.length === 3 ? shape : [1, ...shape];
    const small = new ImageData(W, H);
    for (let i = 0; i < H * W; i++) {
      for (let c = 0; c < 3; c++) {
        const v = x[(C === 3 ? c : 0) * H * W + i];
        small.data[4 * i + c] = Math.round(255 * Math.min(1, Math.max(0, v)));
      }
      small.data[4 * i + 3] = 255;
    }
    const tmp = el("canvas", { width: W, height: H });
    tmp.getContext("2d").putImageData(small, 0, 0);
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(tmp, 0, 0, canvas.width, canvas.height);
  }

  class Explorer {
    constructor(root, doc) {
      this.root = root;
      this.doc = doc;
      this.decoder = new MinivaeDecoder.Decoder(doc);
      this.Z = doc.z_dim;
      const codes = doc.codes;
      this.mu = MinivaeDecoder.unpack(codes.mu).data;            // (n, Z), row-major
      this.n = this.mu.length / this.Z;
      this.labels = codes.labels || null;
      const order = codes.dims_by_var;
      this.dx = order[0];
      this.dy = order.length > 1 ? order[1] : order[0];
      this.lim = [];                                             // slider range per dim
      for (let j = 0; j < this.Z; j++) {
        let m = 3;
        for (let i = 0; i < this.n; i++) m = Math.max(m, Math.abs(this.mu[i * this.Z + j]));
        this.lim.push(Math.ceil(m * 1.1 * 10) / 10);
      }
      this.z = new Float64Array(this.Z);
      this.build();
      this.setZ(this.code(0));
    }

    code(i) { return Array.from(this.mu.subarray(i * this.Z, (i + 1) * this.Z)); }

    colourOf(i) {
      const f = this.colourBy;
      if (f === "label" && this.labels) return PALETTE[this.labels[i] % PALETTE.length];
      if (f && f.startsWith("factor:")) {
        const vals = this.doc.codes.factors[+f.slice(7)];
        const lo = Math.min(...vals), hi = Math.max(...vals);
        const t = hi > lo ? (vals[i] - lo) / (hi - lo) : 0.5;
        return `hsl(${Math.round(240 - 240 * t)}, 70%, 45%)`;
      }
      return "#3f51b5";
    }

    build() {
      const d = this.doc;
      const info = `${d.data}: a VAE with ${this.Z} latent dimensions, beta = ${d.beta}, ` +
        `${d.epochs} epochs; ${this.n} test codes mu(x).`;
      this.scatter = el("canvas", { width: SCATTER, height: SCATTER, class: "scatter",
                                    title: "click: set the two plotted dimensions of z" });
      this.image = el("canvas", { width: IMAGE, height: IMAGE, class: "decoded" });
      this.strip = el("canvas", { width: STEPS * 64, height: 64, class: "strip",
                                  title: "click an image: decode its z" });
      const selX = el("select", { "aria-label": "horizontal dimension" });
      const selY = el("select", { "aria-label": "vertical dimension" });
      for (let j = 0; j < this.Z; j++) {
        selX.append(el("option", { value: j, text: `z${j + 1}` }));
        selY.append(el("option", { value: j, text: `z${j + 1}` }));
      }
      selX.value = this.dx; selY.value = this.dy;
      selX.onchange = () => { this.dx = +selX.value; this.drawScatter(); };
      selY.onchange = () => { this.dy = +selY.value; this.drawScatter(); };
      const colour = el("select", { "aria-label": "colour by" });
      if (this.labels) colour.append(el("option", { value: "label", text: "label" }));
      (d.codes.factor_names || []).forEach((name, k) =>
        colour.append(el("option", { value: `factor:${k}`, text: name })));
      this.colourBy = colour.value;
      colour.onchange = () => { this.colourBy = colour.value; this.drawScatter(); };

      this.sliders = [];
      const sliders = el("div", { class: "sliders" });
      for (let j = 0; j < this.Z; j++) {
        const s = el("input", { type: "range", min: -this.lim[j], max: this.lim[j],
                                step: 0.01, value: 0, "aria-label": `z${j + 1}` });
        const out = el("output", { text: "0.00" });
        s.oninput = () => { this.z[j] = +s.value; this.render(); };
        this.sliders.push([s, out]);
        sliders.append(el("label", {}, `z${j + 1} `, s, out));
      }
      this.pickA = el("select", { "aria-label": "first test example" });
      this.pickB = el("select", { "aria-label": "second test example" });
      const shown = Math.min(this.n, 200);
      for (let i = 0; i < shown; i++) {
        const lab = this.labels ? ` (${d.codes.label_names[this.labels[i]]})` : "";
        this.pickA.append(el("option", { value: i, text: `test code ${i}${lab}` }));
        this.pickB.append(el("option", { value: i, text: `test code ${i}${lab}` }));
      }
      let other = 1;                                   // a second example of another label
      while (this.labels && other < shown - 1 && this.labels[other] === this.labels[0]) other++;
      this.pickB.value = Math.min(other, shown - 1);
      const t = el("input", { type: "range", min: 0, max: 1, step: 0.01, value: 0,
                              "aria-label": "interpolation", class: "t" });
      t.oninput = () => this.setZ(this.between(+t.value));
      this.pickA.onchange = this.pickB.onchange = () => { t.value = 0; this.drawStrip();
                                                          this.setZ(this.between(0)); };
      this.scatter.onclick = (e) => {
        const r = this.scatter.getBoundingClientRect();
        const [u, v] = [(e.clientX - r.left) / r.width, (e.clientY - r.top) / r.height];
        const z = Array.from(this.z);
        z[this.dx] = (2 * u - 1) * this.lim[this.dx];
        z[this.dy] = (1 - 2 * v) * this.lim[this.dy];
        this.setZ(z);
      };
      this.strip.onclick = (e) => {
        const r = this.strip.getBoundingClientRect();
        const k = Math.min(STEPS - 1, Math.floor((e.clientX - r.left) / r.width * STEPS));
        t.value = k / (STEPS - 1);
        this.setZ(this.between(k / (STEPS - 1)));
      };
      this.root.append(
        el("p", { class: "info", text: info }),
        el("div", { class: "explorer-row" },
           el("figure", {}, this.scatter,
              el("figcaption", {}, "codes of test examples: ", selX, " across, ", selY,
                 " up, coloured by ", colour)),
           el("figure", {}, this.image, el("figcaption", { text: "the decoded mean of p(x|z)" })),
           sliders),
        el("div", { class: "interpolate" },
           el("p", {}, "From ", this.pickA, " to ", this.pickB, ": z = (1 - t) mu_A + t mu_B, t ",
              t),
           this.strip));
      this.drawStrip();
    }

    between(t) {
      const a = this.code(+this.pickA.value), b = this.code(+this.pickB.value);
      return a.map((v, j) => (1 - t) * v + t * b[j]);
    }

    setZ(z) {
      z.forEach((v, j) => {
        this.z[j] = v;
        this.sliders[j][0].value = v;
      });
      this.render();
    }

    render() {
      this.sliders.forEach(([, out], j) => { out.textContent = this.z[j].toFixed(2); });
      drawImage(this.image, this.decoder.decode(this.z), this.doc.image_shape);
      this.drawScatter();
    }

    toPx(v, j, side) { return (v / this.lim[j] + 1) / 2 * side; }

    drawScatter() {
      const ctx = this.scatter.getContext("2d"), S = SCATTER;
      ctx.fillStyle = "#fff";
      ctx.fillRect(0, 0, S, S);
      ctx.strokeStyle = "#ddd";
      ctx.beginPath();
      ctx.moveTo(S / 2, 0); ctx.lineTo(S / 2, S); ctx.moveTo(0, S / 2); ctx.lineTo(S, S / 2);
      ctx.stroke();
      for (let i = 0; i < this.n; i++) {
        ctx.fillStyle = this.colourOf(i);
        const x = this.toPx(this.mu[i * this.Z + this.dx], this.dx, S);
        const y = S - this.toPx(this.mu[i * this.Z + this.dy], this.dy, S);
        ctx.fillRect(x - 1.5, y - 1.5, 3, 3);
      }
      const x = this.toPx(this.z[this.dx], this.dx, S);
      const y = S - this.toPx(this.z[this.dy], this.dy, S);
      ctx.strokeStyle = "#000";
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.arc(x, y, 7, 0, 2 * Math.PI);
      ctx.stroke();
      ctx.lineWidth = 1;
    }

    drawStrip() {
      const ctx = this.strip.getContext("2d");
      for (let k = 0; k < STEPS; k++) {
        const frame = el("canvas", { width: 64, height: 64 });
        drawImage(frame, this.decoder.decode(this.between(k / (STEPS - 1))), this.doc.image_shape);
        ctx.drawImage(frame, 64 * k, 0);
      }
    }
  }

  async function start(root) {
    const src = root.dataset.src;
    try {
      const response = await fetch(src);
      if (!response.ok) throw new Error(`${src}: HTTP ${response.status}`);
      window.minivaeExplorers[root.id] = new Explorer(root, await response.json());
      root.dataset.ready = "yes";
    } catch (e) {
      root.append(el("p", { class: "error", text: `Could not load ${src}: ${e.message}. ` +
        "Serve the site over HTTP (python -m http.server) rather than opening the file." }));
      root.dataset.ready = "failed";
      throw e;
    }
  }

  document.querySelectorAll(".minivae-explorer").forEach(start);
})();
