// The decoder of a VAE written by `minivae export RUN`, run in the browser: the forward pass
// of minivae's dense decoder, one layer a line, in float64 (minivae/export.py's `decode` is
// its NumPy twin).
//
//     h = z;   for each layer:  h = act(h W + b)        (in,) -> (out,)
//     x = sigmoid(h[:D])  for a Bernoulli likelihood (h are logits);  h[:D] otherwise
"use strict";

(function (root) {
  // An array stored by minivae.export.pack: {shape, float32: base64 of little-endian float32}.
  function unpack(d) {
    const bytes = Uint8Array.from(atob(d.float32), (c) => c.charCodeAt(0));
    const view = new DataView(bytes.buffer);
    const n = bytes.length / 4;
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);   // little-endian
    return { shape: d.shape, data: out };
  }

  const ACTS = {
    identity: (a) => a,
    relu: (a) => (a > 0 ? a : 0),
    leaky_relu: (a, s) => (a > 0 ? a : s * a),
    tanh: (a) => Math.tanh(a),
    sigmoid: (a) => 1 / (1 + Math.exp(-a)),
    softplus: (a) => Math.max(a, 0) + Math.log1p(Math.exp(-Math.abs(a))),
  };

  class Decoder {
    // doc: the parsed JSON of `minivae export`.
    constructor(doc) {
      this.zDim = doc.z_dim;
      this.xDim = doc.x_dim;
      this.output = doc.output;
      this.layers = doc.layers.map((la) => {
        if (!(la.activation in ACTS)) throw new Error(`unknown activation ${la.activation}`);
        const W = unpack(la.W), b = unpack(la.b);
        return { W: W.data, b: b.data, nIn: W.shape[0], nOut: W.shape[1],
                 act: ACTS[la.activation], slope: la.slope };
      });
    }

    // z: an array of zDim numbers -> Float64Array of xDim: the mean of p(x|z).
    decode(z) {
      if (z.length !== this.zDim) throw new Error(`expected z of ${this.zDim} numbers`);
      let h = Float64Array.from(z);
      for (const { W, b, nIn, nOut, act, slope } of this.layers) {
        const a = Float64Array.from(b);                       // a = b + h W   (nOut,)
        for (let i = 0; i < nIn; i++) {
          const hi = h[i];
          if (hi === 0) continue;                             // a ReLU's zeros add nothing
          const row = i * nOut;
          for (let j = 0; j < nOut; j++) a[j] += hi * W[row + j];
        }
        for (let j = 0; j < nOut; j++) a[j] = act(a[j], slope);
        h = a;
      }
      const mean = h.subarray(0, this.xDim);
      if (this.output === "sigmoid") return mean.map((v) => 1 / (1 + Math.exp(-v)));
      return Float64Array.from(mean);
    }
  }

  root.MinivaeDecoder = { Decoder, unpack };
  if (typeof module !== "undefined") module.exports = root.MinivaeDecoder;
})(typeof window !== "undefined" ? window : globalThis);
