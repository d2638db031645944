/**
 * Deterministic, incompressible bytes for benchmark data (seed states, checkpoints, frames).
 * Dependency-free so the forked load generators can use it without loading the driver.
 *
 * Real simulation states and trajectories barely compress, and a constant fill would flatter
 * any layer that compresses or deduplicates; xorshift128 output does neither, and the same
 * `seed` always gives the same bytes, so runs stay repeatable.
 */

/** `n` bytes of xorshift128 output for `seed` (any integer). */
export function noise(seed: number, n: number): Buffer {
  // Its own ArrayBuffer (never a pooled slice), so the word view below is aligned.
  const out = Buffer.allocUnsafeSlow(n);
  const words = new Uint32Array(out.buffer, out.byteOffset, Math.floor(n / 4));
  // Four 32-bit lanes of state (two 64-bit words in the reference), never all zero.
  let a = (seed ^ 0x9e3779b9) >>> 0 || 1;
  let b = Math.imul(seed ^ 0x85ebca6b, 0xc2b2ae35) >>> 0 || 2;
  let c = 0x27d4eb2f;
  let d = 0x165667b1;
  for (let i = 0; i < words.length; i++) {
    // xorshift128 (Marsaglia) on 32-bit lanes: fast in V8 and with no visible structure.
    const t = a ^ (a << 11);
    a = b;
    b = c;
    c = d;
    d = (d ^ (d >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
    words[i] = d;
  }
  for (let i = words.length * 4; i < n; i++) out[i] = (i * 131 + seed) & 0xff;
  return out;
}
