/**
 * `npm start -- --google`: the local stack with Google's real side. The consent screen, the token
 * endpoint and the Data Portability API are Google's; archives are copied from Google's signed
 * URLs on storage.googleapis.com (https only) into the local bucket stand-in. Firestore, Cloud
 * Tasks, Cloud Storage and the users' sign-in stay local. Needs a real OAuth Web client whose
 * redirect URIs include the web app's callback (http://localhost:5173/oauth/callback).
 */
export const GOOGLE_ENDPOINTS = {
  DATAPORTABILITY_API_ROOT: 'https://dataportability.googleapis.com/',
  OAUTH_TOKEN_URL: 'https://oauth2.googleapis.com/token',
  OAUTH_AUTH_URL: 'https://accounts.google.com/o/oauth2/v2/auth',
  ARCHIVE_URL_HOSTS: 'storage.googleapis.com',
  ARCHIVE_URL_ALLOW_HTTP: 'false',
} as const;

/** The functions' environment for --google, from the caller's: the client id and secret are required. */
export function googleModeEnv(env: Record<string, string | undefined>): Record<string, string> {
  const clientId = env.OAUTH_CLIENT_ID;
  const clientSecret = env.OAUTH_CLIENT_SECRET;
  if (!clientId || !clientSecret) {
    throw new Error('--google needs OAUTH_CLIENT_ID and OAUTH_CLIENT_SECRET of a real OAuth Web client (its redirect URIs must include the web app\'s /oauth/callback)');
  }
  return { ...GOOGLE_ENDPOINTS, OAUTH_CLIENT_ID: clientId, OAUTH_CLIENT_SECRET: clientSecret, ...(env.OAUTH_CLIENT_TESTING_MODE ? { OAUTH_CLIENT_TESTING_MODE: env.OAUTH_CLIENT_TESTING_MODE } : {}) };
}
