/**
 * SSRF guard for outgoing downloads: a host is fetched only when every address it resolves to is
 * a public unicast address. Loopback, private (RFC 1918), carrier-grade NAT, link-local (the
 * metadata server at 169.254.169.254 among them), unique-local, multicast, reserved and
 * IPv4-mapped forms of these are refused, so a signed URL can never reach this project's
 * internal network or the metadata server even if an allowed host's name pointed there.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';

export type HostLookup = (hostname: string) => Promise<Array<{ address: string; family: number }>>;

export const defaultLookup: HostLookup = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

const V4_BLOCKED: Array<[string, number]> = [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local, metadata server
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation
  ['192.88.99.0', 24], // 6to4 relay
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation
  ['203.0.113.0', 24], // documentation
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
];

function v4ToInt(ip: string): number {
  return ip.split('.').reduce((acc, part) => ((acc << 8) | Number(part)) >>> 0, 0);
}

function isBlockedV4(ip: string): boolean {
  const n = v4ToInt(ip);
  return V4_BLOCKED.some(([base, bits]) => {
    const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
    return (n & mask) >>> 0 === (v4ToInt(base) & mask) >>> 0;
  });
}

/** Expands an IPv6 address to 8 groups of 16 bits (a trailing dotted IPv4 part included). */
function v6Groups(ip: string): number[] {
  let s = ip.toLowerCase().split('%')[0] as string;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const n = v4ToInt(v4[1] as string);
    s = `${s.slice(0, -(v4[1] as string).length)}${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? (s.split('::') as [string, string]) : [s, undefined];
  const h = head ? head.split(':').map((g) => parseInt(g, 16)) : [];
  const t = tail ? tail.split(':').map((g) => parseInt(g, 16)) : [];
  const fill = tail === undefined ? [] : new Array<number>(8 - h.length - t.length).fill(0);
  return [...h, ...fill, ...t];
}

function isBlockedV6(ip: string): boolean {
  const g = v6Groups(ip);
  if (g.length !== 8 || g.some((x) => Number.isNaN(x))) return true;
  const [a, b] = g as [number, number];
  if (g.every((x) => x === 0)) return true; // ::
  if (g.slice(0, 7).every((x) => x === 0) && g[7] === 1) return true; // ::1
  const embeddedV4 = (): string => [g[6] as number, g[7] as number].flatMap((x) => [x >>> 8, x & 0xff]).join('.');
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return isBlockedV4(embeddedV4()); // ::ffff:a.b.c.d
  if (g.slice(0, 6).every((x) => x === 0)) return true; // deprecated IPv4-compatible
  if (a === 0x64 && b === 0xff9b) return isBlockedV4(embeddedV4()); // NAT64 64:ff9b::/96
  if (a === 0x2002) return isBlockedV4([b >>> 8, b & 0xff, (g[2] as number) >>> 8, (g[2] as number) & 0xff].join('.')); // 6to4
  if ((a & 0xfe00) === 0xfc00) return true; // unique-local fc00::/7
  if ((a & 0xffc0) === 0xfe80) return true; // link-local fe80::/10
  if ((a & 0xffc0) === 0xfec0) return true; // site-local (deprecated)
  if ((a & 0xff00) === 0xff00) return true; // multicast
  if (a === 0x2001 && b === 0x0db8) return true; // documentation
  if (a === 0x0100 && g.slice(1, 4).every((x) => x === 0)) return true; // discard-only 100::/64
  return false;
}

/** True when `ip` is a public unicast address (v4 or v6) a download may go to. */
export function isPublicAddress(ip: string): boolean {
  const family = isIP(ip);
  if (family === 4) return !isBlockedV4(ip);
  if (family === 6) return !isBlockedV6(ip);
  return false;
}

/**
 * Resolves `hostname` (all addresses) and returns them, or throws `refuse(reason)` unless every one
 * is public. An IP literal is checked as it is.
 */
export async function publicAddresses(hostname: string, lookup: HostLookup, refuse: (reason: string) => Error): Promise<Array<{ address: string; family: number }>> {
  const bare = hostname.replace(/^\[(.*)\]$/, '$1');
  let addresses: Array<{ address: string; family: number }>;
  const literal = isIP(bare);
  if (literal) addresses = [{ address: bare, family: literal }];
  else {
    try {
      addresses = await lookup(bare);
    } catch {
      throw refuse(`the host ${bare} did not resolve`);
    }
  }
  if (addresses.length === 0) throw refuse(`the host ${bare} did not resolve`);
  const blocked = addresses.filter((a) => !isPublicAddress(a.address)).map((a) => a.address);
  if (blocked.length > 0) throw refuse(`the host ${bare} resolves to a non-public address (${blocked.join(', ')})`);
  return addresses;
}

/** Throws `refuse(reason)` unless every address `hostname` resolves to is public. */
export async function assertPublicHost(hostname: string, lookup: HostLookup, refuse: (reason: string) => Error): Promise<void> {
  await publicAddresses(hostname, lookup, refuse);
}
