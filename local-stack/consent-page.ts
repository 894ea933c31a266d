/**
 * The OAuth simulator's consent screen, for a person in a browser (locally, in place of Google's):
 * which groups to share (unticking some is a partial consent, as on Google's screen), for how long
 * (one-time, 30 or 180 days), and Allow or Deny. The form posts back to the simulator's `/auth`,
 * which turns the choice into the same redirect Google sends.
 */
import { scopeOf } from '../functions/src/domain/resource-groups';

/** The query parameters of the consent URL that the form carries back unchanged. */
const CARRIED = ['client_id', 'redirect_uri', 'response_type', 'scope', 'state', 'code_challenge', 'code_challenge_method', 'access_type', 'prompt'];

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function consentPage(query: URLSearchParams, requested: string[]): string {
  const hidden = CARRIED.filter((k) => query.has(k))
    .map((k) => `<input type="hidden" name="${k}" value="${esc(query.get(k) ?? '')}">`)
    .join('\n      ');
  const groups = requested
    .map(
      (g, i) => `<li><input type="checkbox" id="g${i}" name="grant" value="${esc(g)}" checked>
          <label for="g${i}">${esc(g)}</label> <small>${esc(scopeOf(g))}</small></li>`,
    )
    .join('\n        ');
  return `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <link rel="icon" href="data:,">
  <title>Choose what to share – Google (simulated)</title>
  <style>
    body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; color: #202124; }
    fieldset { border: 1px solid #dadce0; border-radius: 8px; margin: 1rem 0; }
    ul { list-style: none; padding: 0; } li { margin: .4rem 0; }
    small { color: #3c4043; }
    button { font-size: 1rem; padding: .5rem 1.5rem; margin-right: 1rem; }
    .note { background: #fef7e0; padding: .5rem; border-radius: 4px; }
  </style>
</head>
<body>
  <main>
    <h1>Choose what to share</h1>
    <p class="note">This is the local stack's stand-in for Google's consent screen. Nothing leaves this machine.</p>
    <form method="post" action="/auth">
      ${hidden}
      <p><label for="account">Google account</label>
        <input id="account" name="login_hint" value="${esc(query.get('login_hint') ?? 'sim-user-1')}" autocomplete="off"></p>
      <fieldset>
        <legend>Data to share (untick what you do not want to share)</legend>
        <ul>
        ${groups}
        </ul>
      </fieldset>
      <fieldset>
        <legend>For how long</legend>
        <p><input type="radio" id="once" name="duration" value="once" checked> <label for="once">One time: one copy of your data now</label></p>
        <p><input type="radio" id="d30" name="duration" value="30"> <label for="d30">30 days: a new copy every day or less often</label></p>
        <p><input type="radio" id="d180" name="duration" value="180"> <label for="d180">180 days</label></p>
      </fieldset>
      <button type="submit" name="decision" value="allow">Allow</button>
      <button type="submit" name="decision" value="deny">Deny</button>
    </form>
  </main>
</body>
</html>`;
}

/** The person's choice on the page, as the simulator's `/auth` knobs (`sim_grant`, `sim_access_type`, `sim_days`, `sim_deny`). */
export function decisionQuery(form: URLSearchParams): URLSearchParams {
  const q = new URLSearchParams();
  for (const k of [...CARRIED, 'login_hint']) {
    const v = form.get(k);
    if (v !== null) q.set(k, v);
  }
  const granted = form.getAll('grant');
  // Allow with nothing ticked shares nothing: Google answers that as a refusal too.
  if (form.get('decision') !== 'allow' || granted.length === 0) {
    q.set('sim_deny', '1');
    return q;
  }
  q.set('sim_grant', granted.join(','));
  const duration = form.get('duration');
  if (duration === '30' || duration === '180') {
    q.set('sim_access_type', 'TIME_BASED');
    q.set('sim_days', duration);
  }
  return q;
}
