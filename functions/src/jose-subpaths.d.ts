/**
 * Types for the jose subpath exports the functions import instead of jose's root entry (which
 * loads every JOSE feature, a cost paid on each cold start). Node finds `jose/jwt/verify` and the
 * others through the "exports" map in jose's package.json; TypeScript's `"moduleResolution":
 * "node"` does not read "exports", so these declarations give each subpath the types jose's root
 * entry publishes for the same functions and classes (its public API, not its dist/ internals).
 * jose is pinned exactly in functions/package.json, and test/unit/jose-subpaths.test.ts checks at
 * run time that each subpath exports what is declared here. Keep them in step with the imports
 * (and drop this file if the project moves to node16/nodenext resolution).
 */
declare module 'jose/jwt/verify' {
  export { jwtVerify } from 'jose';
  export type { JSONWebKeySet, JWTVerifyGetKey, JWTVerifyOptions } from 'jose';
}

declare module 'jose/jwks/local' {
  export { createLocalJWKSet } from 'jose';
}

declare module 'jose/errors' {
  import { errors } from 'jose';
  export import JOSEError = errors.JOSEError;
  export import JOSEAlgNotAllowed = errors.JOSEAlgNotAllowed;
  export import JWKSMultipleMatchingKeys = errors.JWKSMultipleMatchingKeys;
  export import JWKSNoMatchingKey = errors.JWKSNoMatchingKey;
  export import JWKSTimeout = errors.JWKSTimeout;
  export import JWSInvalid = errors.JWSInvalid;
  export import JWSSignatureVerificationFailed = errors.JWSSignatureVerificationFailed;
  export import JWTClaimValidationFailed = errors.JWTClaimValidationFailed;
  export import JWTExpired = errors.JWTExpired;
  export import JWTInvalid = errors.JWTInvalid;
}
