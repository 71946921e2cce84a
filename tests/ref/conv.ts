// Float64 references for convolutions, written from the definitions (not from the kernels).

export interface ConvRefGeometry {
  N: number;
  Cin: number;
  H: number;
  W: number;
  Cout: number;
  KH: number;
  KW: number;
  stride: [number, number];
  padding: [number, number];
  dilation: [number, number];
}

export function convOutSize(g: ConvRefGeometry): [number, number] {
  const Ho = Math.floor((g.H + 2 * g.padding[0] - g.dilation[0] * (g.KH - 1) - 1) / g.stride[0]) +
    1;
  const Wo = Math.floor((g.W + 2 * g.padding[1] - g.dilation[1] * (g.KW - 1) - 1) / g.stride[1]) +
    1;
  return [Ho, Wo];
}

/** y[n,co,oy,ox] = b[co] + sum x[n,ci,oy*s-p+ky*d, ox*s-p+kx*d] * w[co,ci,ky,kx]. */
export function conv2dRef(g: ConvRefGeometry, bias: boolean) {
  return (xs: Float64Array[]): Float64Array => {
    const [x, w, b] = xs;
    const [Ho, Wo] = convOutSize(g);
    const y = new Float64Array(g.N * g.Cout * Ho * Wo);
    for (let n = 0; n < g.N; n++) {
      for (let co = 0; co < g.Cout; co++) {
        for (let oy = 0; oy < Ho; oy++) {
          for (let ox = 0; ox < Wo; ox++) {
            let s = bias ? b[co] : 0;
            for (let ci = 0; ci < g.Cin; ci++) {
              for (let ky = 0; ky < g.KH; ky++) {
                const iy = oy * g.stride[0] - g.padding[0] + ky * g.dilation[0];
                if (iy < 0 || iy >= g.H) continue;
                for (let kx = 0; kx < g.KW; kx++) {
                  const ix = ox * g.stride[1] - g.padding[1] + kx * g.dilation[1];
                  if (ix < 0 || ix >= g.W) continue;
                  s += x[((n * g.Cin + ci) * g.H + iy) * g.W + ix] *
                    w[((co * g.Cin + ci) * g.KH + ky) * g.KW + kx];
                }
              }
            }
            y[((n * g.Cout + co) * Ho + oy) * Wo + ox] = s;
          }
        }
      }
    }
    return y;
  };
}

export interface ConvTRefGeometry extends ConvRefGeometry {
  outputPadding: [number, number];
}

export function convTOutSize(g: ConvTRefGeometry): [number, number] {
  return [
    (g.H - 1) * g.stride[0] - 2 * g.padding[0] + g.dilation[0] * (g.KH - 1) + g.outputPadding[0] +
    1,
    (g.W - 1) * g.stride[1] - 2 * g.padding[1] + g.dilation[1] * (g.KW - 1) + g.outputPadding[1] +
    1,
  ];
}

/** Transposed conv by scattering: each input pixel adds x * w[ci,co] at oy = iy*s - p + ky*d. */
export function convTranspose2dRef(g: ConvTRefGeometry, bias: boolean) {
  return (xs: Float64Array[]): Float64Array => {
    const [x, w, b] = xs;
    const [Ho, Wo] = convTOutSize(g);
    const y = new Float64Array(g.N * g.Cout * Ho * Wo);
    for (let n = 0; n < g.N; n++) {
      for (let ci = 0; ci < g.Cin; ci++) {
        for (let iy = 0; iy < g.H; iy++) {
          for (let ix = 0; ix < g.W; ix++) {
            const v = x[((n * g.Cin + ci) * g.H + iy) * g.W + ix];
            for (let co = 0; co < g.Cout; co++) {
              for (let ky = 0; ky < g.KH; ky++) {
                const oy = iy * g.stride[0] - g.padding[0] + ky * g.dilation[0];
                if (oy < 0 || oy >= Ho) continue;
                for (let kx = 0; kx < g.KW; kx++) {
                  const ox = ix * g.stride[1] - g.padding[1] + kx * g.dilation[1];
                  if (ox < 0 || ox >= Wo) continue;
                  y[((n * g.Cout + co) * Ho + oy) * Wo + ox] += v *
                    w[((ci * g.Cout + co) * g.KH + ky) * g.KW + kx];
                }
              }
            }
          }
        }
      }
    }
    if (bias) {
      for (let i = 0; i < y.length; i++) y[i] += b[Math.floor(i / (Ho * Wo)) % g.Cout];
    }
    return y;
  };
}
