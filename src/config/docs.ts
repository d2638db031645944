/** Documentation generated from the config schema: the defaults file and the key table. */
import { formatName, nest, schemaKeys } from './settings';

/** Every key's default, nested as in conf/default.json. */
export function configDefaults(): Record<string, unknown> {
  return nest(Object.fromEntries(schemaKeys().map(([key, spec]) => [key, spec.default])));
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
