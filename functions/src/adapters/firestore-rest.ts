/**
 * A small Firestore client over the v1 REST API (https://firestore.googleapis.com/v1), for what
 * the stores need: document get/create/set/update/delete, structured queries with a count,
 * batched commits and read-write transactions retried on contention.
 *
 * Why not @google-cloud/firestore: it loads google-gax, gRPC and protobuf descriptors, about
 * 200 ms of a cold start before the first query, even with `preferRest`. This client loads nothing
 * beyond node:http(s); `npm run bench` measures the difference. The wire format is Firestore's
 * documented JSON mapping (Value, StructuredQuery, Write), the same one the official client's
 * REST transport speaks, and the tests read what it writes with the official client.
 */
import http from 'node:http';
import https from 'node:https';

/**
 * A document's fields: null, booleans, numbers (safe integers as integers), strings, Dates (as
 * timestamps, read back as Dates), arrays and maps of these. Undefined fields are left out.
 */
export type DocumentData = Record<string, unknown>;

export type WhereOp = '==' | '<' | '<=' | '>' | '>=' | '!=';

/** A structured query on one collection; `select: []` reads document names only. */
export interface Query {
  collection: string;
  where?: Array<[field: string, op: WhereOp, value: unknown]>;
  orderBy?: Array<[field: string, direction: 'asc' | 'desc']>;
  limit?: number;
  select?: string[];
  /** Cursor values, one per orderBy field: results start after this position. */
  startAfter?: unknown[];
}

export interface QueryDocument<T> {
  id: string;
  path: string;
  data: T;
}

/** Billed operations, for the cost benchmark: documents read (a query bills at least one) and writes. */
export type FirestoreOperation = { kind: 'read'; documents: number } | { kind: 'write'; writes: number };

export interface FirestoreRestOptions {
  projectId: string;
  databaseId?: string;
  /** host:port of the Firestore emulator: plain http, and the emulator's `owner` token. */
  emulatorHost?: string;
  /** OAuth access tokens with the datastore scope; by default the metadata server's (Cloud Functions). */
  accessToken?: () => Promise<string>;
  requestTimeoutMs?: number;
  observe?: (op: FirestoreOperation) => void;
}

/** google.rpc.Code numbers by status name, as the official clients report them in `code`. */
const CODES: Record<string, number> = {
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
};

export class FirestoreError extends Error {
  readonly code: number;
  constructor(
    readonly status: string,
    message: string,
    readonly httpStatus?: number,
  ) {
    super(`Firestore ${status}: ${message}`);
    this.name = 'FirestoreError';
    this.code = CODES[status] ?? 2;
  }
}

/** Worth another attempt: the request may not have been served (or lost a race, for ABORTED). */
const TRANSIENT = new Set(['UNAVAILABLE', 'DEADLINE_EXCEEDED', 'INTERNAL', 'RESOURCE_EXHAUSTED', 'NETWORK']);

// ---------- the JSON mapping of values ----------

type Value = Record<string, unknown>;

function encodeValue(v: unknown): Value {
  if (v === null) return { nullValue: null };
  switch (typeof v) {
    case 'boolean':
      return { booleanValue: v };
    case 'number':
      if (Number.isSafeInteger(v)) return { integerValue: String(v) };
      return { doubleValue: Number.isFinite(v) ? v : String(v) };
    case 'string':
      return { stringValue: v };
    case 'object':
      if (v instanceof Date) return { timestampValue: v.toISOString() };
      if (Array.isArray(v)) return { arrayValue: { values: v.filter((x) => x !== undefined).map(encodeValue) } };
      return { mapValue: { fields: encodeFields(v as DocumentData) } };
    default:
      throw new TypeError(`Firestore cannot store a value of type ${typeof v}`);
  }
}

/** Undefined fields are left out, as the official client's `ignoreUndefinedProperties` does. */
function encodeFields(data: DocumentData): Record<string, Value> {
  const fields: Record<string, Value> = {};
  for (const [k, v] of Object.entries(data)) if (v !== undefined) fields[k] = encodeValue(v);
  return fields;
}

function decodeValue(v: Value): unknown {
  if ('nullValue' in v) return null;
  if ('booleanValue' in v) return v.booleanValue;
  if ('integerValue' in v) return Number(v.integerValue);
  if ('doubleValue' in v) return Number(v.doubleValue);
  if ('stringValue' in v) return v.stringValue;
  if ('timestampValue' in v) return new Date(v.timestampValue as string);
  if ('mapValue' in v) return decodeFields((v.mapValue as { fields?: Record<string, Value> }).fields);
  if ('arrayValue' in v) return ((v.arrayValue as { values?: Value[] }).values ?? []).map(decodeValue);
  if ('bytesValue' in v) return Buffer.from(v.bytesValue as string, 'base64');
  if ('referenceValue' in v) return v.referenceValue;
  if ('geoPointValue' in v) return v.geoPointValue;
  throw new TypeError(`Unknown Firestore value ${Object.keys(v).join(',')}`);
}

function decodeFields(fields: Record<string, Value> | undefined): DocumentData {
  const data: DocumentData = {};
  for (const [k, v] of Object.entries(fields ?? {})) data[k] = decodeValue(v);
  return data;
}

/** A field path: simple names as they are, others quoted in backticks. */
function fieldPath(name: string): string {
  return /^[_a-zA-Z][_a-zA-Z0-9]*$/.test(name) ? name : `\`${name.replace(/\\/g, '\\\\').replace(/`/g, '\\`')}\``;
}

const OPS: Record<WhereOp, string> = {
  '==': 'EQUAL',
  '!=': 'NOT_EQUAL',
  '<': 'LESS_THAN',
  '<=': 'LESS_THAN_OR_EQUAL',
  '>': 'GREATER_THAN',
  '>=': 'GREATER_THAN_OR_EQUAL',
};

function structuredQuery(q: Query): Record<string, unknown> {
  const filters = (q.where ?? []).map(([field, op, value]) => ({ fieldFilter: { field: { fieldPath: fieldPath(field) }, op: OPS[op], value: encodeValue(value) } }));
  return {
    from: [{ collectionId: q.collection }],
    ...(filters.length === 1 ? { where: filters[0] } : filters.length > 1 ? { where: { compositeFilter: { op: 'AND', filters } } } : {}),
    ...(q.orderBy?.length ? { orderBy: q.orderBy.map(([field, dir]) => ({ field: { fieldPath: fieldPath(field) }, direction: dir === 'asc' ? 'ASCENDING' : 'DESCENDING' })) } : {}),
    ...(q.select ? { select: { fields: (q.select.length ? q.select : ['__name__']).map((f) => ({ fieldPath: f === '__name__' ? f : fieldPath(f) })) } } : {}),
    ...(q.startAfter ? { startAt: { values: q.startAfter.map(encodeValue), before: false } } : {}),
    ...(q.limit !== undefined ? { limit: q.limit } : {}),
  };
}

// ---------- writes ----------

type Write = Record<string, unknown>;

interface RestDocument {
  name: string;
  fields?: Record<string, Value>;
}

const idOf = (name: string): string => name.slice(name.lastIndexOf('/') + 1);

function assertPath(path: string): void {
  const parts = path.split('/');
  if (parts.length % 2 !== 0 || parts.some((p) => p === '' || p === '.' || p === '..')) throw new TypeError(`Not a document path: ${path}`);
}

/** Collects writes for one commit: a batch, or the write half of a transaction. */
export class WriteBatch {
  readonly writes: Write[] = [];
  constructor(protected readonly db: FirestoreRest) {}

  /** Fails the commit with ALREADY_EXISTS if the document exists. */
  create(path: string, data: DocumentData): this {
    this.writes.push({ update: { name: this.db.name(path), fields: encodeFields(data) }, currentDocument: { exists: false } });
    return this;
  }

  /** Replaces the whole document (fields left out are removed). */
  set(path: string, data: DocumentData): this {
    this.writes.push({ update: { name: this.db.name(path), fields: encodeFields(data) } });
    return this;
  }

  /** Changes the given top-level fields (undefined removes one); fails NOT_FOUND if the document does not exist. */
  update(path: string, data: DocumentData): this {
    this.writes.push({
      update: { name: this.db.name(path), fields: encodeFields(data) },
      updateMask: { fieldPaths: Object.keys(data).map(fieldPath) },
      currentDocument: { exists: true },
    });
    return this;
  }

  delete(path: string): this {
    this.writes.push({ delete: this.db.name(path) });
    return this;
  }

  async commit(): Promise<void> {
    await this.db.commit(this.writes);
  }
}

/** A read-write transaction: every read first, then writes, committed by `runTransaction`. */
export class Transaction extends WriteBatch {
  constructor(
    db: FirestoreRest,
    readonly id: string,
  ) {
    super(db);
  }

  private checkRead(): void {
    if (this.writes.length > 0) throw new Error('Firestore transactions read everything before they write');
  }

  async get<T = DocumentData>(path: string): Promise<T | undefined> {
    return (await this.getAll<T>([path]))[0];
  }

  /** The documents in the order asked; undefined for a missing one. */
  async getAll<T = DocumentData>(paths: string[]): Promise<Array<T | undefined>> {
    this.checkRead();
    return this.db.batchGet<T>(paths, this.id);
  }

  async query<T = DocumentData>(q: Query): Promise<Array<QueryDocument<T>>> {
    this.checkRead();
    return this.db.runQuery<T>(q, this.id);
  }
}

// ---------- the client ----------

export class FirestoreRest {
  private readonly database: string;
  private readonly documentsRoot: string;
  private readonly baseUrl: URL;
  private readonly agent: http.Agent;
  private readonly transport: typeof http | typeof https;
  private readonly token: () => Promise<string>;
  private readonly timeoutMs: number;

  constructor(private readonly opts: FirestoreRestOptions) {
    this.database = `projects/${opts.projectId}/databases/${opts.databaseId ?? '(default)'}`;
    this.documentsRoot = `${this.database}/documents`;
    const emulator = opts.emulatorHost;
    this.baseUrl = new URL(emulator ? `http://${emulator}` : 'https://firestore.googleapis.com');
    this.transport = emulator ? http : https;
    this.agent = new this.transport.Agent({ keepAlive: true, maxSockets: 64 });
    // On Cloud Functions / Cloud Run (K_SERVICE is set) straight from the metadata server; elsewhere
    // (a laptop against a real project) through Application Default Credentials.
    this.token = emulator ? async () => 'owner' : (opts.accessToken ?? (process.env.K_SERVICE ? metadataServerTokens() : applicationDefaultTokens()));
    this.timeoutMs = opts.requestTimeoutMs ?? 60_000;
  }

  /** The full resource name of a document path such as `jobs/abc`. */
  name(path: string): string {
    assertPath(path);
    return `${this.documentsRoot}/${path}`;
  }

  batch(): WriteBatch {
    return new WriteBatch(this);
  }

  async get<T = DocumentData>(path: string): Promise<T | undefined> {
    return (await this.batchGet<T>([path]))[0];
  }

  async create(path: string, data: DocumentData): Promise<void> {
    await this.batch().create(path, data).commit();
  }

  async set(path: string, data: DocumentData): Promise<void> {
    await this.batch().set(path, data).commit();
  }

  async update(path: string, data: DocumentData): Promise<void> {
    await this.batch().update(path, data).commit();
  }

  async delete(path: string): Promise<void> {
    await this.batch().delete(path).commit();
  }

  async batchGet<T>(paths: string[], transaction?: string): Promise<Array<T | undefined>> {
    if (paths.length === 0) return [];
    const names = paths.map((p) => this.name(p));
    const results = await this.call<Array<{ found?: RestDocument; missing?: string }>>(
      ':batchGet',
      { documents: names, ...(transaction ? { transaction } : {}) },
      !transaction,
    );
    this.opts.observe?.({ kind: 'read', documents: names.length });
    const byName = new Map<string, T>();
    for (const r of results) if (r.found) byName.set(r.found.name, decodeFields(r.found.fields) as T);
    return names.map((n) => byName.get(n));
  }

  async runQuery<T = DocumentData>(q: Query, transaction?: string): Promise<Array<QueryDocument<T>>> {
    const results = await this.call<Array<{ document?: RestDocument }>>(':runQuery', { structuredQuery: structuredQuery(q), ...(transaction ? { transaction } : {}) }, !transaction);
    const docs = results.flatMap((r) => (r.document ? [r.document] : []));
    this.opts.observe?.({ kind: 'read', documents: Math.max(1, docs.length) });
    return docs.map((d) => ({ id: idOf(d.name), path: d.name.slice(this.documentsRoot.length + 1), data: decodeFields(d.fields) as T }));
  }

  async count(q: Query): Promise<number> {
    const results = await this.call<Array<{ result?: { aggregateFields?: Record<string, Value> } }>>(
      ':runAggregationQuery',
      { structuredAggregationQuery: { structuredQuery: structuredQuery(q), aggregations: [{ alias: 'count', count: {} }] } },
      true,
    );
    this.opts.observe?.({ kind: 'read', documents: 1 });
    const field = results.find((r) => r.result)?.result?.aggregateFields?.count;
    return field ? Number(decodeValue(field)) : 0;
  }

  async commit(writes: Write[], transaction?: string): Promise<void> {
    if (writes.length === 0 && !transaction) return;
    await this.call(':commit', { writes, ...(transaction ? { transaction } : {}) }, false);
    this.opts.observe?.({ kind: 'write', writes: writes.length });
  }

  /**
   * Runs `fn` in a read-write transaction and commits its writes. Contention (ABORTED) and
   * transient failures run it again from the start, up to `maxAttempts`, so `fn` must decide from
   * what it reads, as a compare-and-set does.
   */
  async runTransaction<R>(fn: (tx: Transaction) => Promise<R>, opts: { maxAttempts?: number } = {}): Promise<R> {
    const maxAttempts = opts.maxAttempts ?? 5;
    let previous: string | undefined;
    for (let attempt = 1; ; attempt++) {
      const begun = await this.call<{ transaction: string }>(':beginTransaction', { options: { readWrite: previous ? { retryTransaction: previous } : {} } }, true);
      const tx = new Transaction(this, begun.transaction);
      let committed = false;
      try {
        const result = await fn(tx);
        await this.commit(tx.writes, tx.id);
        committed = true;
        return result;
      } catch (err) {
        if (!committed) await this.call(':rollback', { transaction: tx.id }, false).catch(() => undefined);
        const status = err instanceof FirestoreError ? err.status : undefined;
        if (attempt >= maxAttempts || !status || !(status === 'ABORTED' || TRANSIENT.has(status))) throw err;
        previous = tx.id;
        await sleep(backoffMs(attempt));
      }
    }
  }

  /**
   * Gets an access token and opens a keep-alive connection (TLS included) ahead of the first
   * query: a GET of the API's root, which reads nothing and bills nothing.
   */
  async warm(): Promise<void> {
    await this.token();
    await new Promise<void>((resolve) => {
      const req = this.transport.get(new URL('/', this.baseUrl), { agent: this.agent, timeout: 5_000 }, (res) => {
        res.resume();
        res.on('end', resolve);
        res.on('error', () => resolve());
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve());
    });
  }

  /** Closes idle keep-alive sockets. */
  close(): void {
    this.agent.destroy();
  }

  /** POSTs to `{database}/documents{verb}`; idempotent calls are retried on transient failures. */
  private async call<T>(verb: string, body: unknown, idempotent: boolean): Promise<T> {
    const attempts = idempotent ? 4 : 1;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.post<T>(`/v1/${this.documentsRoot}${verb}`, body);
      } catch (err) {
        if (attempt >= attempts || !(err instanceof FirestoreError) || !TRANSIENT.has(err.status)) throw err;
        await sleep(backoffMs(attempt));
      }
    }
  }

  private async post<T>(path: string, body: unknown): Promise<T> {
    const token = await this.token();
    const payload = JSON.stringify(body);
    return new Promise<T>((resolve, reject) => {
      const req = this.transport.request(
        new URL(path, this.baseUrl),
        {
          method: 'POST',
          agent: this.agent,
          timeout: this.timeoutMs,
          headers: {
            Authorization: `Bearer ${token}`,
            'Content-Type': 'application/json',
            'Content-Length': Buffer.byteLength(payload),
            // Routes the request to the right database, as the official clients do.
            'x-goog-request-params': `project_id=${encodeURIComponent(this.opts.projectId)}&database_id=${encodeURIComponent(this.opts.databaseId ?? '(default)')}`,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (e) => reject(new FirestoreError('NETWORK', e.message)));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown;
            try {
              parsed = text === '' ? {} : JSON.parse(text);
            } catch {
              parsed = undefined;
            }
            const status = res.statusCode ?? 0;
            // Streamed methods answer an array, whose last element may carry the error.
            const errorOf = (x: unknown) => (x && typeof x === 'object' && 'error' in x ? (x as { error: { status?: string; message?: string } }).error : undefined);
            const error = errorOf(parsed) ?? (Array.isArray(parsed) ? parsed.map(errorOf).find(Boolean) : undefined);
            if (status >= 400 || error || parsed === undefined) {
              reject(new FirestoreError(error?.status ?? httpStatusName(status), error?.message ?? `HTTP ${status}: ${text.slice(0, 200)}`, status));
              return;
            }
            resolve(parsed as T);
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      req.on('error', (e) => reject(e instanceof FirestoreError ? e : new FirestoreError('NETWORK', e.message)));
      req.end(payload);
    });
  }
}

function httpStatusName(status: number): string {
  if (status === 400) return 'INVALID_ARGUMENT';
  if (status === 401) return 'UNAUTHENTICATED';
  if (status === 403) return 'PERMISSION_DENIED';
  if (status === 404) return 'NOT_FOUND';
  if (status === 409) return 'ABORTED';
  if (status === 429) return 'RESOURCE_EXHAUSTED';
  if (status === 503) return 'UNAVAILABLE';
  if (status === 504) return 'DEADLINE_EXCEEDED';
  if (status >= 500) return 'INTERNAL';
  return 'UNKNOWN';
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Full jitter on 100 ms doubling, capped at 5 s. */
const backoffMs = (attempt: number): number => Math.random() * Math.min(5_000, 100 * 2 ** attempt);

function applicationDefaultTokens(): () => Promise<string> {
  let auth: Promise<{ getAccessToken(): Promise<string | null | undefined> }> | undefined;
  return async () => {
    auth ??= import('google-auth-library').then(({ GoogleAuth }) => new GoogleAuth({ scopes: ['https://www.googleapis.com/auth/datastore'] }));
    const token = await (await auth).getAccessToken();
    if (!token) throw new FirestoreError('UNAUTHENTICATED', 'Application Default Credentials gave no access token');
    return token;
  };
}

/**
 * Access tokens of the function's service account from the metadata server, cached until five
 * minutes before they expire (what google-auth-library does on Google Cloud, without loading it).
 */
function metadataServerTokens(): () => Promise<string> {
  let cached: { token: string; expiresAt: number } | undefined;
  let pending: Promise<string> | undefined;
  const host = process.env.GCE_METADATA_HOST ?? 'metadata.google.internal';
  const fetchToken = () =>
    new Promise<string>((resolve, reject) => {
      const req = http.get(
        { host, path: '/computeMetadata/v1/instance/service-accounts/default/token', headers: { 'Metadata-Flavor': 'Google' }, timeout: 10_000 },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => {
            try {
              if (res.statusCode !== 200) throw new Error(`metadata server answered ${res.statusCode}`);
              const { access_token, expires_in } = JSON.parse(text) as { access_token: string; expires_in: number };
              cached = { token: access_token, expiresAt: Date.now() + expires_in * 1000 };
              resolve(access_token);
            } catch (e) {
              reject(new FirestoreError('UNAUTHENTICATED', `no access token from the metadata server: ${(e as Error).message}`));
            }
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error('metadata server timed out')));
      req.on('error', (e) => reject(new FirestoreError('UNAUTHENTICATED', `no access token from the metadata server: ${e.message}`)));
    });
  return async () => {
    if (cached && cached.expiresAt - Date.now() > 300_000) return cached.token;
    pending ??= fetchToken().finally(() => (pending = undefined));
    return pending;
  };
}
