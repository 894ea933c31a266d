/**
 * How a large archive is cut into byte ranges for the ranged copy, and what the part objects are
 * called. Pure: the copier and the job runner must agree on both.
 */

/**
 * `parts` ranges of ceil(size / parts) bytes, the last one shorter; ranges that would be empty are
 * left out, so the count can be below `parts` (5 bytes in 4 parts: 2 + 2 + 1). Cutting again into
 * the resulting count gives the same ranges.
 */
export function partRanges(size: number, parts: number): Array<readonly [start: number, end: number]> {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`size must be a positive integer, got ${size}`);
  if (!Number.isInteger(parts) || parts < 1 || parts > 32) throw new RangeError('parts must be an integer from 1 to 32 (the compose limit)');
  const step = Math.ceil(size / parts);
  const out: Array<readonly [number, number]> = [];
  for (let start = 0; start < size; start += step) out.push([start, Math.min(size, start + step) - 1] as const);
  return out;
}

/** `NAME.part-I-of-N` (1-based), next to the archive it becomes, so deleting an export's prefix removes leftovers too. */
export function partObjectName(objectName: string, index: number, count: number): string {
  return `${objectName}.part-${index + 1}-of-${count}`;
}
