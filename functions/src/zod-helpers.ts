/**
 * Schema pieces shared by the configuration and the HTTP handlers. The code uses zod 3's API
 * (on a cold start it loads in a fraction of zod 4's time); these keep two of zod 4's stricter
 * readings the code relied on.
 */
import { z } from 'zod';

/**
 * A URL, read as zod 4's `z.string().url()` read it: whitespace around it is trimmed before the
 * check and from the value (a stray newline in an environment variable or a body does not travel
 * on into a token audience or a redirect URI), and the ASCII tabs and newlines the URL parser
 * ignores are dropped.
 */
export const urlString = z.string().transform((s, ctx) => {
  const trimmed = s.trim();
  if (!URL.canParse(trimmed)) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'Invalid URL' });
    return z.NEVER;
  }
  return trimmed.replace(/[\t\n\r]/g, '');
});

/** An integer in Number's safe range: zod 4's `.int()` refused the others, zod 3's needs `.safe()`. */
export const safeInt = () => z.number().int().safe();

/** The same from a string (environment variables, query parameters). */
export const coercedSafeInt = () => z.coerce.number().int().safe();
