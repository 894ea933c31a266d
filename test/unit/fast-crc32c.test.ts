/** The stand-ins' native CRC32C agrees with the storage client's, whole and in pieces. */
import { randomBytes } from 'node:crypto';
import { CRC32C } from '@google-cloud/storage';
import { describe, expect, it } from 'vitest';
import { FastCrc32c } from '../../local-stack/fast-crc32c';

describe('FastCrc32c', () => {
  it('matches the storage client on the standard check value and on random bytes fed in pieces', () => {
    // RFC 3720's check value: CRC32C("123456789") = 0xE3069283.
    expect(new FastCrc32c().update(Buffer.from('123456789')).valueOf()).toBe(0xe3069283);
    const data = randomBytes(300_001);
    const reference = new CRC32C();
    reference.update(data);
    const fast = new FastCrc32c();
    for (let at = 0; at < data.length; at += 65_537) fast.update(data.subarray(at, at + 65_537));
    expect(fast.toString()).toBe(reference.toString());
    expect(fast.valueOf()).toBe(reference.valueOf() >>> 0);
  });

  it('goes on from a value computed earlier (a resumed upload), including values past 2^31', () => {
    for (let i = 0; i < 20; i++) {
      const [a, b] = [randomBytes(1000 + i), randomBytes(777)];
      const first = new FastCrc32c().update(a).valueOf();
      expect(new FastCrc32c(first).update(b).valueOf()).toBe(new FastCrc32c().update(Buffer.concat([a, b])).valueOf());
    }
    expect(new FastCrc32c(0xffffffff).valueOf()).toBe(0xffffffff);
  });
});
