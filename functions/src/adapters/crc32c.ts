/**
 * CRC32C (Castagnoli), the checksum Cloud Storage and Cloud KMS report, computed slicing-by-8.
 * The storage client's CRC32C goes byte by byte (about 125 MB/s); slicing by 8 is several times
 * faster, which matters when one function instance hashes gigabytes.
 */
const CRC_TABLE = (() => {
  const t = new Int32Array(8 * 256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c;
  }
  for (let i = 0; i < 256; i++) {
    let c = t[i];
    for (let s = 1; s < 8; s++) {
      c = t[c & 0xff] ^ (c >>> 8);
      t[s * 256 + i] = c;
    }
  }
  return t;
})();

export class Crc32c {
  private crc = -1;

  update(b: Uint8Array): this {
    const t = CRC_TABLE;
    let c = this.crc;
    let i = 0;
    const n = b.length;
    for (; i + 8 <= n; i += 8) {
      const a = c ^ (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24));
      c =
        t[1792 + (a & 0xff)] ^
        t[1536 + ((a >>> 8) & 0xff)] ^
        t[1280 + ((a >>> 16) & 0xff)] ^
        t[1024 + (a >>> 24)] ^
        t[768 + b[i + 4]] ^
        t[512 + b[i + 5]] ^
        t[256 + b[i + 6]] ^
        t[b[i + 7]];
    }
    for (; i < n; i++) c = t[(c ^ b[i]) & 0xff] ^ (c >>> 8);
    this.crc = c;
    return this;
  }

  /** Base64 of the big-endian 32-bit value, as Cloud Storage reports `crc32c`. */
  digestBase64(): string {
    const out = Buffer.alloc(4);
    out.writeUInt32BE(~this.crc >>> 0);
    return out.toString('base64');
  }
}
