/**
 * Seeded randomness for reproducible images: the same seed gives the same latents and the same
 * ancestral/LCM noise on every machine and Node version.
 *
 * Generator: xoshiro128** 1.1 (Blackman & Vigna), state seeded from the 53-bit seed by splitmix32
 * (Steele, Lea & Flood's splitmix, 32-bit variant: `z += 0x9e3779b9`, then the murmur3 finalizer).
 * Uniforms take 53 bits from two outputs; normals are Box–Muller pairs. The numbers differ from
 * torch.randn's for the same seed: a seed reproduces Darkroom's images, not diffusers'.
 * @module
 */

export const MAX_SEED = Number.MAX_SAFE_INTEGER;

function splitmix32(state: { z: number }): number {
  state.z = (state.z + 0x9e3779b9) | 0;
  let z = state.z;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

const rotl = (x: number, k: number): number => ((x << k) | (x >>> (32 - k))) >>> 0;

export class Random {
  #s = new Uint32Array(4);
  #spare: number | null = null;

  /** `seed`: an integer in [0, 2^53). */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be an integer in [0, ${MAX_SEED}], got ${seed}`);
    // Both halves of the seed feed the state, so seeds that differ only above bit 32 differ.
    const state = { z: (seed % 0x100000000) ^ Math.imul(Math.floor(seed / 0x100000000), 0x27d4eb2f) };
    for (let i = 0; i < 4; i++) this.#s[i] = splitmix32(state);
    if (this.#s.every((v) => v === 0)) this.#s[0] = 1;
  }

  /** A generator with this exact state (the reference implementation's test vectors use one). */
  static fromState(s0: number, s1: number, s2: number, s3: number): Random {
    const r = new Random(0);
    r.#s.set([s0, s1, s2, s3]);
    r.#spare = null;
    return r;
  }

  /** The next 32-bit output of xoshiro128**. */
  nextUint32(): number {
    const s = this.#s;
    const s0 = s[0] ?? 0;
    const s1 = s[1] ?? 0;
    const result = Math.imul(rotl(Math.imul(s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (s1 << 9) >>> 0;
    s[2] = (s[2] ?? 0) ^ s0;
    s[3] = (s[3] ?? 0) ^ s1;
    s[1] = s1 ^ (s[2] ?? 0);
    s[0] = s0 ^ (s[3] ?? 0);
    s[2] = (s[2] ?? 0) ^ t;
    s[3] = rotl(s[3] ?? 0, 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  uniform(): number {
    const hi = this.nextUint32() >>> 5;
    const lo = this.nextUint32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Standard normal; Box–Muller, both values of each pair used. */
  normal(): number {
    if (this.#spare !== null) {
      const v = this.#spare;
      this.#spare = null;
      return v;
    }
    // 1 - u is in (0, 1], so the logarithm is finite.
    const u1 = 1 - this.uniform();
    const u2 = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    this.#spare = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  }

  /** `n` standard normals, e.g. initial latents of shape [1, 4, 64, 64]. */
  normals(n: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.normal();
    return out;
  }
}

/** A random seed for requests that give none; reported back so the image can be made again. */
export function randomSeed(): number {
  return Math.floor(Math.random() * MAX_SEED);
}
