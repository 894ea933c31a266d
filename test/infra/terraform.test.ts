/**
 * Static checks of the deployment (infra/, scripts/deploy.sh, cloudbuild.yaml). Providers cannot
 * be downloaded on these machines, so `terraform validate` and `plan` cannot run; these checks read
 * the HCL with HashiCorp's parser and hold it against the code: the configuration schema's
 * variables come from functions/src/config.ts, so the checks follow the code when it changes.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { exportStoreQueries } from '../../functions/src/adapters/firestore-export-store';
import { exportTallyQueries } from '../../functions/src/adapters/firestore-export-tally';
import { outboxQueries } from '../../functions/src/adapters/firestore-outbox';
import { CONSENT_STATE_COLLECTION, consentStateQueries } from '../../functions/src/adapters/firestore-consent-state-store';
import { ENTRY_POINTS } from '../../functions/src/composition-root';
import type { QuerySpec as Query } from '../../functions/src/adapters/firestore-client';
import { scheduleStoreQueries } from '../../functions/src/adapters/firestore-schedule-store';
import { AUDIT_COLLECTIONS, auditQueries } from '../../functions/src/adapters/firestore-audit-trail';
import { CONFIG_VARIABLES, ConfigError, parseConfig } from '../../functions/src/config';
import { renderVariablesSection, TABLE_BEGIN, TABLE_END, VARIABLES_TF } from '../../scripts/terraform-variables-table';
import {
  block,
  blocks,
  INFRA_DIR,
  loadTerraform,
  locals,
  resolveLocal,
  resources,
  rootModule,
  stringLiterals,
  variables,
  type Block,
  type Resource,
  type TerraformFile,
} from './terraform-files';

const run = promisify(execFile);
const REPO = path.join(__dirname, '..', '..');

/**
 * Every IAM role the deployment may grant, reviewed. Adding a role here is a security review:
 * say in the commit why the narrower roles do not do.
 */
const REVIEWED_ROLES = new Set([
  'roles/datastore.user', // Firestore reads/writes; no narrower scope than the project
  'roles/secretmanager.secretAccessor', // on the two secrets only
  'roles/cloudkms.cryptoKeyEncrypterDecrypter', // on the token key / the CMEK key only
  'roles/cloudtasks.enqueuer', // on one queue each
  'roles/iam.serviceAccountUser', // on the tasks invoker account only (OIDC tokens on tasks)
  'roles/iam.serviceAccountTokenCreator', // the api on its own account only: signBlob for download links (no key to leak; narrower roles cannot sign)
  'roles/run.invoker', // on one function each
  'roles/storage.objectUser', // on the archive bucket only
  'roles/storage.objectViewer', // build account, on the source bucket only
  'roles/logging.logWriter', // build account: build logs
  'roles/artifactregistry.writer', // build account: function images
  'roles/pubsub.publisher', // the events topic (functions that end jobs), the dead-letter topic (the Pub/Sub service agent)
  'roles/pubsub.subscriber', // the Pub/Sub service agent on the example subscription only (it acknowledges what it dead-letters)
]);

/** Read by code that is on its way (KMS envelope encryption); not in the schema yet. */
const AHEAD_OF_CODE = new Set(['KMS_KEY_NAME']);

/** Local stack only: a production function must never get these. */
const LOCAL_ONLY = new Set(['FIRESTORE_EMULATOR_HOST', 'PUBSUB_EMULATOR_HOST', 'STORAGE_API_ENDPOINT', 'CLOUD_TASKS_EMULATOR_HOST', 'ARCHIVE_URL_ALLOW_HTTP', 'STORAGE_SIGNING_KEY_FILE', 'WEBHOOK_ALLOW_LOCAL_HTTP', 'SECRET_MANAGER_EMULATOR_HOST']);

/** Credentials: only from Secret Manager, never as plain environment variables. */
const SECRET_VARIABLES = new Set(['OAUTH_CLIENT_SECRET', 'TOKEN_ENCRYPTION_KEY']);

const PUBLIC_ENTRY_POINTS = new Set(['api']);

/** Bool variables and paths need no validation; everything else does. */
const WITHOUT_VALIDATION = new Set(['functions_source_dir']);

/** hcl2json's form of an HCL expression, `${expr}`, built so it is not mistaken for a JS template. */
const hcl = (expr: string): string => ['$', '{', expr, '}'].join('');

/** The variables the schema requires (no default): parse an empty environment and read the problems. */
function requiredConfigVariables(): string[] {
  try {
    parseConfig({});
  } catch (e) {
    if (e instanceof ConfigError) return e.problems.map((p) => p.split(':')[0]);
    throw e;
  }
  throw new Error('parseConfig({}) accepted an empty environment');
}

let all: TerraformFile[];
let root: TerraformFile[];
let localValues: Record<string, unknown>;
let functions: Resource[];

beforeAll(async () => {
  all = await loadTerraform();
  root = rootModule(all);
  localValues = locals(root);
  functions = resources(root, 'google_cloudfunctions2_function');
});

function entryPoint(fn: Resource): string {
  return String(block(fn.body, 'build_config')?.entry_point);
}

function keysOf(value: unknown, what: string): string[] {
  const resolved = resolveLocal(value, localValues);
  if (resolved === null || typeof resolved !== 'object' || Array.isArray(resolved)) {
    throw new Error(`${what}: expected a map literal or a local holding one, got ${JSON.stringify(value)}`);
  }
  return Object.keys(resolved);
}

function plainEnvironment(fn: Resource): string[] {
  const env = block(fn.body, 'service_config')?.environment_variables;
  return env === undefined ? [] : keysOf(env, `${fn.address} environment_variables`);
}

function secretEnvironment(fn: Resource): string[] {
  const sc = block(fn.body, 'service_config');
  const literal = blocks(sc, 'secret_environment_variables').map((b) => String(b.key));
  // `dynamic "x" { … }` parses to `dynamic: { x: [{ for_each, content }] }` (an object, not a list).
  const dynamic = blocks(sc?.dynamic as Block | undefined, 'secret_environment_variables').flatMap((d) =>
    keysOf(d.for_each, `${fn.address} dynamic secret_environment_variables`),
  );
  return [...literal, ...dynamic];
}

/** `${google_service_account.api.email}` -> `google_service_account.api`. */
function referencedAddress(expression: unknown): string | undefined {
  const m = /^\$\{([a-z0-9_]+\.[a-z0-9_]+)(?:\.[a-z0-9_[\]]+)*\}$/.exec(String(expression));
  return m?.[1];
}

describe('terraform files', () => {
  it('every .tf file parses, and the root module declares the resources the issue lists', () => {
    expect(root.map((f) => f.file)).toEqual(
      expect.arrayContaining(['storage.tf', 'tasks.tf', 'functions.tf', 'iam.tf', 'variables.tf', 'outputs.tf', 'firestore.tf']),
    );
    expect(all.some((f) => f.file.startsWith(path.join('examples', 'minimal')))).toBe(true);
    for (const type of [
      'google_project_service',
      'google_firestore_database',
      'google_firestore_index',
      'google_firestore_field',
      'google_storage_bucket',
      'google_storage_bucket_object',
      'google_cloud_tasks_queue',
      'google_cloudfunctions2_function',
      'google_service_account',
      'google_cloud_scheduler_job',
      'google_secret_manager_secret',
      'google_kms_key_ring',
      'google_kms_crypto_key',
      'google_logging_metric',
      'google_monitoring_alert_policy',
    ]) {
      expect(resources(root, type).length, type).toBeGreaterThan(0);
    }
  });

  it('deploys one function per entry point, on nodejs22', () => {
    expect(functions.map(entryPoint).sort()).toEqual([...ENTRY_POINTS].sort());
    for (const fn of functions) expect(block(fn.body, 'build_config')?.runtime, fn.address).toBe('nodejs22');
  });

  it('sets every configuration variable the schema requires on every function', () => {
    const required = requiredConfigVariables();
    // Sanity: the schema does require the ones this deployment was written for.
    expect(required).toEqual(expect.arrayContaining(['GOOGLE_CLOUD_PROJECT', 'OAUTH_CLIENT_ID', 'ARCHIVE_BUCKET']));
    for (const fn of functions) {
      const set = new Set([...plainEnvironment(fn), ...secretEnvironment(fn)]);
      const missing = required.filter((name) => !set.has(name));
      expect(missing, `${fn.address} lacks required configuration`).toEqual([]);
    }
  });

  it('decides every other variable the code reads, except the local-stack ones, and sets nothing unknown', () => {
    const known = new Set<string>(CONFIG_VARIABLES);
    for (const name of LOCAL_ONLY) expect(known.has(name), `${name} is no longer in the schema: update LOCAL_ONLY`).toBe(true);
    for (const fn of functions) {
      const plain = plainEnvironment(fn);
      const secret = secretEnvironment(fn);
      const set = new Set([...plain, ...secret]);
      expect(CONFIG_VARIABLES.filter((n) => !LOCAL_ONLY.has(n) && !set.has(n)), `${fn.address} leaves to the code's defaults`).toEqual([]);
      expect([...set].filter((n) => !known.has(n) && !AHEAD_OF_CODE.has(n)), `${fn.address} sets variables the code does not read`).toEqual([]);
      expect([...set].filter((n) => LOCAL_ONLY.has(n)), `${fn.address} sets local-stack variables`).toEqual([]);
      expect(plain.filter((n) => SECRET_VARIABLES.has(n)), `${fn.address} puts a credential in plain environment`).toEqual([]);
      expect(secret.sort(), `${fn.address} secrets`).toEqual([...SECRET_VARIABLES].sort());
    }
  });

  it('points CHECK_FUNCTION_URL and COPY_FUNCTION_URL at the functions that serve them', () => {
    const env = resolveLocal(block(functions[0].body, 'service_config')?.environment_variables, localValues) as Record<string, string>;
    const nameOf = (ep: string) => String(functions.find((f) => entryPoint(f) === ep)?.body.name);
    for (const [variable, ep] of [
      ['CHECK_FUNCTION_URL', 'checkArchiveJob'],
      ['COPY_FUNCTION_URL', 'copyArchives'],
    ]) {
      const url = String(resolveLocal(env[variable], localValues));
      // The deterministic gen2 URL, ending in the function's own name expression.
      expect(url, variable).toMatch(/^https:\/\/\$\{var\.region\}-\$\{var\.project_id\}\.cloudfunctions\.net\//);
      expect(url.endsWith(`/${nameOf(ep)}`), `${variable}=${url} vs name ${nameOf(ep)}`).toBe(true);
    }
  });

  it('gives each function its own service account', () => {
    const accounts = new Set(resources(root, 'google_service_account').map((r) => r.address));
    const used = functions.map((fn) => referencedAddress(block(fn.body, 'service_config')?.service_account_email));
    for (const [i, sa] of used.entries()) {
      expect(sa && accounts.has(sa), `${functions[i].address} service_account_email`).toBe(true);
    }
    expect(new Set(used).size).toBe(functions.length);
  });

  it('grants only reviewed roles, additively (no authoritative bindings or policies)', () => {
    const iam = resources(root, /_iam_(member|binding|policy)$/);
    expect(iam.length).toBeGreaterThan(0);
    for (const r of iam) {
      expect(r.type, `${r.address} is authoritative`).toMatch(/_iam_member$/);
      const role = String(r.body.role);
      const roles = /each\.(value|key)/.test(role) ? stringLiterals(String(r.body.for_each)) : [role];
      expect(roles.length, `${r.address}: role not resolvable: ${role}`).toBeGreaterThan(0);
      for (const x of roles) expect(REVIEWED_ROLES.has(x), `${r.address} grants unreviewed ${x}`).toBe(true);
    }
  });

  it('lets only the api sign as a service account, and only as itself (download links through IAM signBlob)', () => {
    const creators = resources(root, /_iam_member$/).filter((r) => JSON.stringify(r.body).includes('roles/iam.serviceAccountTokenCreator'));
    expect(creators.map((r) => r.address)).toEqual(['google_service_account_iam_member.api_signs_as_itself']);
    const [grant] = creators;
    expect(String(grant?.body.role)).toBe('roles/iam.serviceAccountTokenCreator');
    expect(String(grant?.body.service_account_id)).toMatch(/^\$\{google_service_account\.api\.name\}$/);
    expect(String(grant?.body.member)).toMatch(/^\$\{google_service_account\.api\.member\}$/);
  });

  it('grants allUsers / allAuthenticatedUsers only on the public API function, and read on the web app\'s files', () => {
    const publicFunctions = functions.filter((f) => PUBLIC_ENTRY_POINTS.has(entryPoint(f))).map((f) => f.address);
    for (const r of resources(root, /_iam_member$/)) {
      const members = JSON.stringify([r.body.member, r.body.members]);
      if (!/allUsers|allAuthenticatedUsers/.test(members)) continue;
      if (r.type === 'google_storage_bucket_iam_member') {
        // The web app's bucket holds only its static files: anyone may read an object, no more.
        expect(r.address).toBe('google_storage_bucket_iam_member.web_public_read');
        expect(String(r.body.role)).toBe('roles/storage.objectViewer');
        expect(JSON.stringify(r.body.bucket)).toContain('google_storage_bucket.web');
        continue;
      }
      expect(r.type, r.address).toBe('google_cloud_run_service_iam_member');
      expect(String(r.body.role)).toBe('roles/run.invoker');
      expect(publicFunctions, `${r.address} makes ${String(r.body.service)} public`).toContain(referencedAddress(r.body.service));
    }
  });

  it('lets only the invoker service account call the task and scheduler functions', () => {
    const invokerGrants = resources(root, 'google_cloud_run_service_iam_member');
    const invoker = 'google_service_account.tasks_invoker';
    for (const fn of functions.filter((f) => !PUBLIC_ENTRY_POINTS.has(entryPoint(f)))) {
      const grants = invokerGrants.filter((g) => referencedAddress(g.body.service) === fn.address);
      expect(grants.length, `${fn.address} has no invoker`).toBeGreaterThan(0);
      for (const g of grants) expect(referencedAddress(g.body.member), g.address).toBe(invoker);
      expect(block(fn.body, 'service_config')?.ingress_settings, fn.address).not.toBe('ALLOW_ALL');
    }
    const job = resources(root, 'google_cloud_scheduler_job')[0];
    const oidc = block(block(job.body, 'http_target'), 'oidc_token');
    expect(referencedAddress(oidc?.service_account_email)).toBe(invoker);
    expect(oidc?.audience).toBe(block(job.body, 'http_target')?.uri);
  });

  it('types, describes and (where it makes sense) validates every variable', () => {
    for (const files of [root, all.filter((f) => f.file.startsWith('examples'))]) {
      for (const [name, v] of Object.entries(variables(files))) {
        expect(typeof v.type, `${name} has no type`).toBe('string');
        expect(String(v.description ?? '').length, `${name} has no description`).toBeGreaterThan(10);
      }
    }
    for (const [name, v] of Object.entries(variables(root))) {
      if (v.type === hcl('bool') || WITHOUT_VALIDATION.has(name)) continue;
      expect(blocks(v, 'validation').length, `${name} has no validation`).toBeGreaterThan(0);
    }
  });

  it('scales every function to zero except the API, whose warm instances api_min_instances sets (default 0)', () => {
    for (const fn of functions) {
      const min = block(fn.body, 'service_config')?.min_instance_count;
      expect(min, fn.address).toBe(entryPoint(fn) === 'api' ? hcl('var.api_min_instances') : 0);
    }
    const v = variables(root).api_min_instances;
    expect(v?.default).toBe(0);
    expect(String(blocks(v, 'validation')[0]?.condition)).toContain('var.function_max_instances.api');
  });

  it('builds resource names from var.prefix', () => {
    const nameAttributes: Record<string, string> = {
      google_service_account: 'account_id',
      google_cloudfunctions2_function: 'name',
      google_cloud_tasks_queue: 'name',
      google_cloud_scheduler_job: 'name',
      google_storage_bucket: 'name',
      google_secret_manager_secret: 'secret_id',
      google_kms_key_ring: 'name',
      google_kms_crypto_key: 'name',
      google_logging_metric: 'name',
      google_monitoring_alert_policy: 'display_name',
    };
    for (const [type, attribute] of Object.entries(nameAttributes)) {
      for (const r of resources(root, type)) {
        const value = String(resolveLocal(r.body[attribute], localValues));
        expect(value, `${r.address}.${attribute}`).toContain(hcl('var.prefix'));
      }
    }
    const oauthSecret = String(resolveLocal(hcl('local.names.oauth_secret'), localValues));
    expect(oauthSecret).toContain(hcl('var.prefix'));
  });

  it('redeploys on a code change: the source object is named by the content hash', () => {
    const [object] = resources(root, 'google_storage_bucket_object');
    expect(String(object.body.name)).toContain('output_md5');
    for (const fn of functions) {
      const storage = block(block(block(fn.body, 'build_config'), 'source'), 'storage_source');
      expect(referencedAddress(storage?.object), fn.address).toBe(object.address);
    }
  });

  it("declares exactly the composite Firestore indexes the stores' queries need, and the TTL policy", () => {
    const declared = resources(root, 'google_firestore_index').map((r) => ({
      name: r.name,
      collection: String(r.body.collection),
      fields: blocks(r.body, 'fields').map((f) => `${String(f.field_path)} ${String(f.order)}`),
    }));
    // Every query the stores run, built by the stores' own query builders (arguments do not matter).
    const queries: Array<[string, Query]> = [
      ...Object.entries(exportStoreQueries).map(([name, build]): [string, Query] => [name, (build as (...a: unknown[]) => Query)('x', 1, [1, 'x'])]),
      ...Object.entries(scheduleStoreQueries).map(([name, build]): [string, Query] => [name, (build as (...a: unknown[]) => Query)('x', 1)]),
      ...Object.entries(consentStateQueries).map(([name, build]): [string, Query] => [name, (build as (...a: unknown[]) => Query)('x')]),
      ...Object.entries(exportTallyQueries).map(([name, build]): [string, Query] => [name, (build as (...a: unknown[]) => Query)(1, 1)]),
      ...Object.entries(outboxQueries).map(([name, build]): [string, Query] => [name, (build as (...a: unknown[]) => Query)(1, 1)]),
      ...Object.entries(auditQueries).map(([name, build]): [string, Query] => [name, (build as (...a: unknown[]) => Query)('x', 1, 1)]),
    ];
    expect(queries.length).toBe(15);
    const needed = queries.flatMap(([name, q]) => {
      const index = compositeIndexFor(q);
      return index ? [{ name, collection: q.collection, ...index }] : [];
    });
    // The export list, the per-day limit, the scheduler's due schedules, a schedule's runs.
    // The audit trail's pending facts of a user and a user's trail page.
    expect(needed.map((n) => n.name).sort()).toEqual(['dueSchedules', 'entriesOfUser', 'exportsOfUser', 'pendingOfUser', 'runsOfSchedule', 'schedulesOfUser']);
    const serves = (d: (typeof declared)[number], n: (typeof needed)[number]) =>
      d.collection === n.collection &&
      d.fields.length === n.equality.length + n.ordered.length &&
      [...d.fields.slice(0, n.equality.length)].sort().join() === [...n.equality].sort().join() &&
      d.fields.slice(n.equality.length).join() === n.ordered.join();
    for (const n of needed) expect(declared.filter((d) => serves(d, n)).map((d) => d.name), `${n.name}: ${[...n.equality, ...n.ordered].join(', ')}`).toHaveLength(1);
    // and no index that no query uses: each one costs a write on every document change.
    for (const d of declared) expect(needed.some((n) => serves(d, n)), `${d.name} serves no query`).toBe(true);
    // The gcloud path (scripts/deploy.sh) creates the same indexes.
    const script = readFileSync(path.join(__dirname, '../../scripts/deploy.sh'), 'utf8').replace(/\\\n\s*/g, '');
    const scripted = [...script.matchAll(/firestore indexes composite create --collection-group=(\S+)((?: --field-config=\S+)+)/g)].map((m) => ({
      collection: m[1],
      fields: [...(m[2] ?? '').matchAll(/field-path=(\w+),order=(\w+)/g)].map((f) => `${f[1]} ${(f[2] ?? '').toUpperCase()}`),
    }));
    expect(scripted.map((i) => `${i.collection}: ${i.fields.join(', ')}`).sort()).toEqual(declared.map((d) => `${d.collection}: ${d.fields.join(', ')}`).sort());
    // The stores that write an `expireAt` for a TTL policy: idempotency records and started consents.
    for (const collection of ['idempotency', CONSENT_STATE_COLLECTION]) {
      const ttl = resources(root, 'google_firestore_field').find((r) => r.body.collection === collection);
      expect(ttl?.body.field, collection).toBe('expireAt');
      expect(blocks(ttl?.body, 'ttl_config').length, collection).toBe(1);
      expect(script, collection).toContain(`ttls update expireAt --collection-group=${collection} --enable-ttl`);
    }
    // Retention: ended exports and jobs, and the audit trail's three collections.
    const retained = ['exports', 'jobs', ...Object.values(AUDIT_COLLECTIONS)];
    const recordTtl = resources(root, 'google_firestore_field').find((r) => r.name === 'record_ttl') as Resource;
    expect(recordTtl.body.for_each).toBe(hcl(`toset(${JSON.stringify(retained).replaceAll(',', ', ')})`));
    expect(recordTtl.body.field).toBe('expireAt');
    expect(blocks(recordTtl.body, 'ttl_config')).toHaveLength(1);
    expect(script).toContain(`for c in ${retained.join(' ')}; do`);
    expect(script).toContain('ttls update expireAt --collection-group="$c" --enable-ttl');
  });

  it('runs the schedule tick from Cloud Scheduler with an OIDC token, over the indexed due-schedule query', async () => {
    const job = resources(root, 'google_cloud_scheduler_job').find((r) => r.name === 'schedules') as Resource;
    expect(job).toBeDefined();
    const target = block(job.body, 'http_target');
    expect(target?.uri).toBe(hcl('local.function_urls.schedule'));
    expect(block(target, 'oidc_token')?.audience).toBe(hcl('local.function_urls.schedule'));
    // The query the tick runs is the one an index above serves: equality on state, range and order on nextRunAt.
    expect(compositeIndexFor(scheduleStoreQueries.dueSchedules(0, 1))).toEqual({ equality: ['state ASCENDING'], ordered: ['nextRunAt ASCENDING'] });
  });

  it('keeps the archive bucket private', () => {
    const archives = resources(root, 'google_storage_bucket').find((r) => r.name === 'archives') as Resource;
    expect(archives.body.uniform_bucket_level_access).toBe(true);
    expect(archives.body.public_access_prevention).toBe('enforced');
  });

  it('is formatted (terraform fmt -check)', async () => {
    // terraform must be on PATH (it is on the machine image and in CI): a missing binary fails here.
    await expect(run('terraform', ['fmt', '-check', '-recursive', INFRA_DIR])).resolves.toBeDefined();
  });
});

describe('infra/README.md', () => {
  it('holds the variables table generated from variables.tf', async () => {
    const readme = await readFile(path.join(INFRA_DIR, 'README.md'), 'utf8');
    const begin = readme.indexOf(TABLE_BEGIN);
    const end = readme.indexOf(TABLE_END);
    expect(begin, 'table markers missing').toBeGreaterThanOrEqual(0);
    const inReadme = readme.slice(begin, end + TABLE_END.length);
    expect(inReadme, 'regenerate with: npx tsx scripts/terraform-variables-table.ts').toBe(
      await renderVariablesSection(await readFile(VARIABLES_TF, 'utf8')),
    );
  });
});

describe('scripts/deploy.sh (the gcloud alternative)', () => {
  const script = path.join(REPO, 'scripts', 'deploy.sh');

  it('is valid bash', async () => {
    await expect(run('bash', ['-n', script])).resolves.toBeDefined();
  });

  it('sets every required configuration variable and deploys every entry point', async () => {
    const text = await readFile(script, 'utf8');
    for (const name of requiredConfigVariables()) {
      // Plain ones go into the env-vars YAML file (`NAME: value`), secrets into --set-secrets (`NAME=secret:latest`).
      expect(new RegExp(`^\\s*${name}: |${name}=\\$\\{?[A-Z_]+\\}?:latest`, 'm').test(text), name).toBe(true);
    }
    for (const ep of ENTRY_POINTS) expect(text, ep).toMatch(new RegExp(`\\b${ep}\\b`));
  });

  it('ships the entry point package.json names, as the Terraform archive does', async () => {
    const { main } = JSON.parse(await readFile(path.join(REPO, 'functions', 'package.json'), 'utf8')) as { main: string };
    expect(main).toBe('index.cjs');
    expect(await readFile(script, 'utf8')).toMatch(new RegExp(`cp [^\\n]*"\\$REPO/functions/${main.replace('.', '\\.')}"[^\\n]* "\\$stage/"`));
    const excludes = /excludes\s*=\s*\[([^\]]*)\]/.exec(await readFile(path.join(INFRA_DIR, 'storage.tf'), 'utf8'))?.[1] ?? '';
    expect(excludes).toContain('"src"');
    expect(excludes).not.toContain(main);
  });

  it('keeps only the API warm, API_MIN_INSTANCES instances (default 0), and refuses a bad count', async () => {
    const env = { ...process.env, DRY_RUN: '1', PROJECT_ID: 'demo-infra', OAUTH_CLIENT_ID: '1-a.apps.googleusercontent.com' };
    const minimums = async (extra: Record<string, string>) => {
      const { stdout } = await run('bash', [script], { env: { ...env, ...extra } });
      return Object.fromEntries(
        stdout
          .split('\n')
          .filter((l) => l.includes(' functions deploy '))
          .map((l) => [/--entry-point=(\S+)/.exec(l)?.[1], /--min-instances=(\S+)/.exec(l)?.[1]]),
      ) as Record<string, string>;
    };
    const zero = Object.fromEntries(ENTRY_POINTS.map((ep) => [ep, '0']));
    expect(await minimums({})).toEqual(zero);
    expect(await minimums({ API_MIN_INSTANCES: '2' })).toEqual({ ...zero, api: '2' });
    // Refused for the count itself, before anything is deployed (not failing for some other reason).
    for (const bad of ['-1', '1.5', '21', 'x']) {
      await expect(run('bash', [script], { env: { ...env, API_MIN_INSTANCES: bad } }), bad).rejects.toMatchObject({
        stderr: expect.stringContaining(`API_MIN_INSTANCES must be a whole number from 0 to 20, got '${bad}'`),
        stdout: expect.not.stringContaining(' functions deploy '),
      });
    }
  });

  it('under DRY_RUN prints a deployment with reviewed roles, private workers and one account per function', async () => {
    const { stdout } = await run('bash', [script], {
      env: { ...process.env, DRY_RUN: '1', PROJECT_ID: 'demo-infra', OAUTH_CLIENT_ID: '1-a.apps.googleusercontent.com' },
    });
    const lines = stdout.split('\n').filter((l) => l.startsWith('gcloud '));
    const roles = [...stdout.matchAll(/--role=(\S+)/g)].map((m) => m[1]);
    expect(roles.length).toBeGreaterThan(10);
    for (const role of roles) expect(REVIEWED_ROLES.has(role), role).toBe(true);
    const deploys = lines.filter((l) => l.includes(' functions deploy '));
    expect(deploys.map((l) => /--entry-point=(\S+)/.exec(l)?.[1]).sort()).toEqual([...ENTRY_POINTS].sort());
    const accounts = deploys.map((l) => /--service-account=(\S+)/.exec(l)?.[1]);
    expect(new Set(accounts).size).toBe(ENTRY_POINTS.length);
    for (const l of deploys) expect(l).toContain('--runtime=nodejs22');
    const publicGrants = lines.filter((l) => /allUsers|allAuthenticatedUsers/.test(l));
    // The API (it checks ID tokens itself) and the web app's static files, read-only.
    expect(publicGrants).toHaveLength(2);
    expect(publicGrants[0]).toContain('add-invoker-policy-binding portability-api ');
    expect(publicGrants[1]).toMatch(/storage buckets add-iam-policy-binding gs:\/\/demo-infra-portability-web --member=allUsers --role=roles\/storage.objectViewer /);
  });
});

describe('infra/smoke-test.sh', () => {
  const script = path.join(INFRA_DIR, 'smoke-test.sh');

  /** An API stand-in: 401 without `Bearer good`, 200 with it (or always 200 when `open`). */
  async function withApi<T>(open: boolean, fn: (url: string) => Promise<T>): Promise<T> {
    const server = http.createServer((req, res) => {
      res.statusCode = open || req.headers.authorization === 'Bearer good' ? 200 : 401;
      res.end('{}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      return await fn(`http://127.0.0.1:${port}`);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  const smoke = (url: string, token: string) =>
    run('bash', [script], { env: { PATH: process.env.PATH, API_URL: url, ID_TOKEN: token } }).then(
      (r) => ({ ok: true, out: r.stdout + r.stderr }),
      (e: { stdout: string; stderr: string }) => ({ ok: false, out: e.stdout + e.stderr }),
    );

  it('passes against an API that refuses anonymous calls and accepts the token', async () => {
    const r = await withApi(false, (url) => smoke(url, 'good'));
    expect(r.ok, r.out).toBe(true);
    expect(r.out).not.toContain('good');
  });

  it('fails when the API accepts anonymous calls, or refuses the token', async () => {
    expect((await withApi(true, (url) => smoke(url, 'good'))).ok).toBe(false);
    expect((await withApi(false, (url) => smoke(url, 'bad'))).ok).toBe(false);
  });
});

describe('cloudbuild.yaml', () => {
  interface Step {
    id?: string;
    name?: string;
    waitFor?: string[];
    args?: string[];
    script?: string;
    entrypoint?: string;
  }
  let build: { steps: Step[]; substitutions?: Record<string, string> } | undefined;
  let text = '';
  let yamlError: unknown;
  /** The parsed file; PyYAML is required (.ci/run installs python3-yaml), so its absence fails the tests that need it. */
  const parsed = (): NonNullable<typeof build> => {
    if (!build) throw new Error(`cloudbuild.yaml was not parsed by python3 with PyYAML (apt-get install python3-yaml): ${String(yamlError)}`);
    return build;
  };

  beforeAll(async () => {
    text = await readFile(path.join(REPO, 'cloudbuild.yaml'), 'utf8');
    // No YAML package in node_modules; python3 with PyYAML parses it.
    const py = 'import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))';
    try {
      const child = execFile('python3', ['-c', py]);
      child.stdin?.end(text);
      const out = await new Promise<string>((resolve, reject) => {
        let s = '';
        child.stdout?.on('data', (d: Buffer) => (s += d.toString()));
        child.on('error', reject);
        child.on('close', (code) => (code === 0 ? resolve(s) : reject(new Error(`python3 exited ${code}`))));
      });
      build = JSON.parse(out) as typeof build;
    } catch (e) {
      yamlError = e;
    }
  });

  it('parses, and every step has a unique id and waits only for earlier steps', () => {
    const steps = parsed().steps;
    const seen = new Set<string>();
    for (const s of steps) {
      expect(s.id, JSON.stringify(s).slice(0, 80)).toBeTruthy();
      expect(seen.has(String(s.id)), `duplicate id ${s.id}`).toBe(false);
      for (const w of s.waitFor ?? []) if (w !== '-') expect(seen.has(w), `${s.id} waits for ${w}, not an earlier step`).toBe(true);
      seen.add(String(s.id));
    }
    for (const id of ['install', 'lint', 'typecheck', 'test', 'build', 'terraform-plan', 'terraform-apply', 'smoke-test']) {
      expect(seen.has(id), id).toBe(true);
    }
    const byId = new Map(steps.map((s) => [s.id, s]));
    // lint and typecheck run in parallel after the install
    expect(byId.get('lint')?.waitFor).toEqual(['install']);
    expect(byId.get('typecheck')?.waitFor).toEqual(['install']);
  });

  it('applies only behind the _APPLY substitution', () => {
    expect(parsed().substitutions?._APPLY).toBe('false');
    const apply = parsed().steps.find((s) => s.id === 'terraform-apply');
    expect(JSON.stringify(apply)).toMatch(/\$_APPLY|\$\{_APPLY\}/);
  });

  it('uses only declared or built-in substitutions (shell variables are written $$NAME)', () => {
    const builtIn = new Set(['PROJECT_ID', 'BUILD_ID', 'PROJECT_NUMBER', 'LOCATION', 'COMMIT_SHA', 'SHORT_SHA', 'BRANCH_NAME', 'TAG_NAME', 'REF_NAME', 'REPO_NAME', 'REPO_FULL_NAME', 'REVISION_ID', 'SERVICE_ACCOUNT_EMAIL', 'SERVICE_ACCOUNT']);
    // The declarations read with a regex too, and compared with what PyYAML parsed.
    const section = text.slice(text.search(/^substitutions:/m));
    const declared = new Set([...section.matchAll(/^ {2}(_[A-Z0-9_]+):/gm)].map((m) => m[1]));
    expect([...declared].sort()).toEqual(Object.keys(parsed().substitutions ?? {}).sort());
    const used = [...text.replace(/\$\$/g, '').matchAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g)].map((m) => m[1]);
    expect(used.filter((u) => !builtIn.has(u) && !declared.has(u))).toEqual([]);
    expect(used.length).toBeGreaterThan(0);
  });
});

/**
 * The composite index a Firestore query needs: its equality fields (ascending, in any order), then
 * its inequality field unless ordered, then its orderBy fields. None when one field is involved, or
 * equality filters alone (Firestore merges single-field indexes for those).
 */
function compositeIndexFor(q: Query): { equality: string[]; ordered: string[] } | undefined {
  const where = q.where ?? [];
  const order = q.orderBy ?? [];
  const equality = where.filter(([, op]) => op === '==').map(([f]) => f);
  const range = where.filter(([, op]) => op !== '==').map(([f]) => f);
  if (new Set([...equality, ...range, ...order.map(([f]) => f)]).size <= 1) return undefined;
  if (range.length === 0 && order.length === 0) return undefined;
  const ordered = order.map(([f, d]) => `${f} ${d === 'asc' ? 'ASCENDING' : 'DESCENDING'}`);
  if (range[0] !== undefined && !order.some(([f]) => f === range[0])) ordered.unshift(`${range[0]} ASCENDING`);
  return { equality: equality.filter((f) => !order.some(([o]) => o === f)).map((f) => `${f} ASCENDING`), ordered };
}
