/**
 * Prints the markdown table of the Terraform variables in infra/variables.tf, for infra/README.md
 * (`npx tsx scripts/terraform-variables-table.ts`). test/infra/terraform.test.ts checks that the
 * README's table equals this output, so the table cannot drift from the code.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse } from '@cdktf/hcl2json';

export const VARIABLES_TF = path.join(__dirname, '..', 'infra', 'variables.tf');
export const TABLE_BEGIN = '<!-- BEGIN TERRAFORM VARIABLES (generated: npx tsx scripts/terraform-variables-table.ts) -->';
export const TABLE_END = '<!-- END TERRAFORM VARIABLES -->';

interface VariableBlock {
  type?: string;
  description?: string;
  default?: unknown;
}

/** `${list(string)}` -> `list(string)`, on one line. */
function expression(s: string): string {
  const inner = s.startsWith('${') && s.endsWith('}') ? s.slice(2, -1) : s;
  return inner.replace(/\s+/g, ' ').replace(/\( /g, '(').replace(/ \)/g, ')').trim();
}

/** Safe inside a markdown table cell: no column breaks, no raw HTML (`<project_id>`). */
function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** The markdown table (header and rows, no markers) of the variables in one variables.tf text. */
export async function renderVariablesTable(variablesTf: string): Promise<string> {
  const parsed = (await parse('variables.tf', variablesTf)) as { variable?: Record<string, VariableBlock[]> };
  const variables = Object.entries(parsed.variable ?? {}).map(([name, blocks]) => ({ name, ...blocks[0] }));
  // Required ones first: those are what a user must decide.
  variables.sort((a, b) => Number('default' in a) - Number('default' in b) || a.name.localeCompare(b.name));
  const rows = variables.map((v) => {
    const type = v.type === undefined ? '' : `\`${cell(expression(v.type))}\``;
    const def = !('default' in v) ? '**required**' : `\`${cell(JSON.stringify(v.default))}\``;
    return `| \`${v.name}\` | ${type} | ${def} | ${cell(v.description ?? '')} |`;
  });
  return ['| Variable | Type | Default | Description |', '|---|---|---|---|', ...rows].join('\n');
}

/** The table as it sits in infra/README.md: between the BEGIN and END markers. */
export async function renderVariablesSection(variablesTf: string): Promise<string> {
  return `${TABLE_BEGIN}\n${await renderVariablesTable(variablesTf)}\n${TABLE_END}`;
}

if (require.main === module) {
  readFile(VARIABLES_TF, 'utf8')
    .then(renderVariablesSection)
    .then((s) => process.stdout.write(`${s}\n`))
    .catch((e: unknown) => {
      console.error(e);
      process.exitCode = 1;
    });
}
