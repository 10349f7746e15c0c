/**
 * Content for the files simulated peripherals serve when a scenario asks for a size instead of a file: deterministic
 * pseudo-random bytes, so a test can compute what it should receive.
 */

/**
 * `sizeBytes` pseudo-random bytes from `seed` (mulberry32, little-endian words): the same on every run and
 * machine, so a test computes the bytes a `sizeBytes` + `seed` peripheral serves.
 */
export function generateFileContent(sizeBytes: number, seed = 0): Buffer {
  if (!Number.isInteger(sizeBytes) || sizeBytes < 0) throw new RangeError(`sizeBytes must be a whole number ≥ 0, got ${sizeBytes}`);
  const out = Buffer.alloc(sizeBytes);
  let a = seed >>> 0;
  for (let i = 0; i < sizeBytes; i += 4) {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    const word = (t ^ (t >>> 14)) >>> 0;
    if (i + 4 <= sizeBytes) {
      out.writeUInt32LE(word, i);
    } else {
      for (let k = 0; i + k < sizeBytes; k++) out[i + k] = (word >>> (8 * k)) & 0xff;
    }
  }
  return out;
}
