/**
 * Types for the jose subpath exports the functions import instead of jose's root entry (which
 * loads every JOSE feature, a cost paid on each cold start). Node finds `jose/jwt/verify` and the
 * others through the "exports" map in jose's package.json; TypeScript's `"moduleResolution":
 * "node"` does not read "exports", so these declarations lead it to the same declaration files
 * that map names under "types". Keep them in step with the imports (and drop this file if the
 * project moves to node16/nodenext resolution).
 */
declare module 'jose/jwt/verify' {
  export * from 'jose/dist/types/jwt/verify';
  export type { JSONWebKeySet } from 'jose/dist/types/types';
}

declare module 'jose/jwks/local' {
  export * from 'jose/dist/types/jwks/local';
}

declare module 'jose/errors' {
  export * from 'jose/dist/types/util/errors';
}
