/** Documentation generated from the config schema: the defaults file and the key table. */
import { formatName, schemaKeys } from './settings';

/** Every key's default, nested as in conf/default.json. */
export function configDefaults(): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  for (const [key, spec] of schemaKeys()) {
    const parts = key.split('.');
    let node = result;
    for (const p of parts.slice(0, -1)) node = (node[p] ??= {}) as Record<string, unknown>;
    node[parts[parts.length - 1]!] = spec.default;
  }
  return result;
}

/** The configuration reference table of docs/config.md and the README. */
export function configTable(): string {
  const rows = schemaKeys().map(([key, spec]) => {
    const def = JSON.stringify(spec.default);
    const env = spec.env ? `\`${spec.env}\`${spec.sensitive ? ` (or \`${spec.env}_FILE\`)` : ''}` : '';
    return `| \`${key}\` | ${spec.doc.replace(/\|/g, '\\|')} | ${formatName(spec.format)} | \`${def}\` | ${env} |`;
  });
  return ['| key | meaning | format | default | environment |', '|---|---|---|---|---|', ...rows].join('\n');
}
