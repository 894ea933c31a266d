/** The web app's config.json: what a deployment may write, and the readable refusal of anything else. */
import { describe, expect, it } from 'vitest';
import { parseRuntimeConfig } from '../../web/src/runtime-config';

const local = { apiBaseUrl: 'http://127.0.0.1:8080/', auth: { mode: 'local', idTokenUrl: 'http://127.0.0.1:9000/id-token' } };
const firebase = { apiBaseUrl: 'https://europe-west1-p.cloudfunctions.net/portability-api', auth: { mode: 'firebase', apiKey: 'AIza-x', authDomain: 'p.firebaseapp.com', projectId: 'p' } };

describe('parseRuntimeConfig', () => {
  it('takes the local and the Firebase sign-in, and drops a trailing slash from the API address', () => {
    expect(parseRuntimeConfig(local)).toMatchObject({ apiBaseUrl: 'http://127.0.0.1:8080', auth: { mode: 'local' } });
    expect(parseRuntimeConfig({ ...firebase, returnTo: { url: 'https://survey.example/done', label: 'Back' }, locale: 'de' })).toMatchObject({
      auth: { mode: 'firebase', projectId: 'p' },
      returnTo: { url: 'https://survey.example/done' },
      locale: 'de',
    });
  });

  it('refuses what would break the app later, naming the field', () => {
    expect(() => parseRuntimeConfig(null)).toThrow('config.json is not a JSON object');
    // The page words it as a setup problem by this name.
    expect(() => parseRuntimeConfig({})).toThrow(expect.objectContaining({ name: 'ConfigProblem' }));
    expect(() => parseRuntimeConfig({ ...local, apiBaseUrl: 'javascript:alert(1)' })).toThrow(/apiBaseUrl/);
    expect(() => parseRuntimeConfig({ ...local, auth: { mode: 'local' } })).toThrow(/auth.idTokenUrl/);
    expect(() => parseRuntimeConfig({ ...firebase, auth: { mode: 'firebase', apiKey: 'k' } })).toThrow(/apiKey, authDomain and projectId/);
    expect(() => parseRuntimeConfig({ ...local, auth: { mode: 'saml' } })).toThrow(/auth.mode/);
    expect(() => parseRuntimeConfig({ ...local, returnTo: { url: 'ftp://x' } })).toThrow(/returnTo.url/);
  });
});
