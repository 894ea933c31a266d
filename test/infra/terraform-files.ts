/**
 * Reads the Terraform configuration in infra/ through HashiCorp's HCL parser (compiled to
 * WebAssembly in @cdktf/hcl2json), since providers cannot be downloaded here and
 * `terraform validate` cannot run. Expressions stay strings such as `${local.names.api}`; the
 * small resolvers below follow the references the checks need.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse } from '@cdktf/hcl2json';

export const INFRA_DIR = path.join(__dirname, '..', '..', 'infra');

/** A block as hcl2json returns it: attributes are values or `${…}` strings, nested blocks are arrays. */
export type Block = Record<string, unknown>;

export interface TerraformFile {
  /** Relative to infra/. */
  file: string;
  json: {
    variable?: Record<string, Block[]>;
    locals?: Block[];
    resource?: Record<string, Record<string, Block[]>>;
    data?: Record<string, Record<string, Block[]>>;
    output?: Record<string, Block[]>;
    [key: string]: unknown;
  };
}

export interface Resource {
  file: string;
  type: string;
  name: string;
  /** `type.name`, as other expressions refer to it. */
  address: string;
  body: Block;
}

async function listTfFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue; // .terraform, .build
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listTfFiles(full)));
    else if (entry.name.endsWith('.tf')) out.push(full);
  }
  return out.sort();
}

/** Parses every .tf file under `dir` (recursively). Throws on the first file that does not parse. */
export async function loadTerraform(dir = INFRA_DIR): Promise<TerraformFile[]> {
  const files = await listTfFiles(dir);
  return Promise.all(
    files.map(async (full) => {
      const file = path.relative(dir, full);
      const json = (await parse(file, await readFile(full, 'utf8'))) as TerraformFile['json'];
      return { file, json };
    }),
  );
}

/** The root module only (infra/*.tf), without examples. */
export function rootModule(files: TerraformFile[]): TerraformFile[] {
  return files.filter((f) => !f.file.includes(path.sep));
}

export function resources(files: TerraformFile[], type?: string | RegExp): Resource[] {
  const out: Resource[] = [];
  for (const { file, json } of files) {
    for (const [t, byName] of Object.entries(json.resource ?? {})) {
      if (type !== undefined && (typeof type === 'string' ? t !== type : !type.test(t))) continue;
      for (const [name, blocks] of Object.entries(byName)) {
        for (const body of blocks) out.push({ file, type: t, name, address: `${t}.${name}`, body });
      }
    }
  }
  return out;
}

/** Every local value of the module, merged over its `locals` blocks. */
export function locals(files: TerraformFile[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { json } of files) for (const block of json.locals ?? []) Object.assign(out, block);
  return out;
}

export function variables(files: TerraformFile[]): Record<string, Block> {
  const out: Record<string, Block> = {};
  for (const { json } of files) for (const [name, blocks] of Object.entries(json.variable ?? {})) out[name] = blocks[0];
  return out;
}

/** First nested block of that name (`service_config { … }` parses to `[{…}]`). */
export function block(body: Block | undefined, name: string): Block | undefined {
  const v = body?.[name];
  return Array.isArray(v) ? (v[0] as Block | undefined) : undefined;
}

export function blocks(body: Block | undefined, name: string): Block[] {
  const v = body?.[name];
  return Array.isArray(v) ? (v as Block[]) : [];
}

/**
 * Follows a whole-value reference `${local.a.b}` to the local's value (itself following further
 * whole-value references). Anything else is returned as it is.
 */
export function resolveLocal(value: unknown, localValues: Record<string, unknown>, depth = 0): unknown {
  if (depth > 10 || typeof value !== 'string') return value;
  const m = /^\$\{local\.([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)\}$/.exec(value);
  if (!m) return value;
  let current: unknown = localValues;
  for (const part of m[1].split('.')) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string, unknown>)[part];
  }
  return resolveLocal(current, localValues, depth + 1);
}

/** The string literals inside an expression such as `${toset(["roles/a", "roles/b"])}`. */
export function stringLiterals(expression: string): string[] {
  return [...expression.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]);
}
