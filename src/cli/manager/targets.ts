/**
 * `targets list|show|create|update|delete`: a manager's projects.
 */
import { list, num, parse, positionals, seg, str, type Ctx, type Parsed, type Resource } from './args';
import { usage } from './exit';
import { print, table } from './output';
import { STAGES as MODEL_STAGES } from '../../model';
import type { Target, TargetCreated, Targets } from '../../http/api-schemas';


const STAGES: readonly string[] = MODEL_STAGES;
const FIELDS = {
  engine: { type: 'string', multiple: true },
  stage: { type: 'string' },
  weight: { type: 'string' },
  option: { type: 'string', multiple: true },
  options: { type: 'string' },
  unset: { type: 'string', multiple: true },
} as const;

/** `key=value` option flags: the value is JSON when it parses as JSON, a string otherwise. */
function optionFlags(p: Parsed, allowUnset: boolean): Record<string, unknown> | undefined {
  let options: Record<string, unknown> | undefined;
  const raw = str(p, 'options');
  if (raw !== undefined) {
    try {
      options = JSON.parse(raw) as Record<string, unknown>;
    } catch (err) {
      throw usage(`--options must be a JSON object: ${(err as Error).message}`);
    }
    if (!options || typeof options !== 'object' || Array.isArray(options)) throw usage('--options must be a JSON object');
  }
  for (const kv of list(p, 'option')) {
    const i = kv.indexOf('=');
    if (i < 1) throw usage(`--option "${kv}": expected key=value`);
    const value = kv.slice(i + 1);
    let parsed: unknown = value;
    try {
      parsed = JSON.parse(value);
    } catch {
      // Not JSON: a plain string.
    }
    (options ??= {})[kv.slice(0, i)] = parsed;
  }
  const unset = list(p, 'unset');
  if (unset.length > 0 && !allowUnset) throw usage('--unset is for update');
  for (const k of unset) (options ??= {})[k] = null;
  return options;
}

function fields(p: Parsed, allowUnset: boolean): Record<string, unknown> {
  const stage = str(p, 'stage');
  if (stage !== undefined && !STAGES.includes(stage)) throw usage(`--stage must be one of ${STAGES.join(', ')}`);
  const engines = list(p, 'engine').flatMap((e) => e.split(',')).filter(Boolean);
  const weight = num(p, 'weight', Number.MIN_VALUE, 1e6);
  const options = optionFlags(p, allowUnset);
  return { ...(engines.length > 0 ? { engines } : {}), ...(stage ? { stage } : {}), ...(weight !== undefined ? { weight } : {}), ...(options ? { options } : {}) };
}

function counts(t: Target): string {
  return t.streams ? `${t.streams.ok} ok, ${t.streams.stopped} stopped, ${t.streams.failed} failed, ${t.streams.frames} frames` : '-';
}

function details(t: Target): string {
  return table(
    [
      ['id', t.id],
      ['owner', t.owner],
      ['stage', t.stage],
      ['weight', t.weight],
      ['engines', t.engines.join(',')],
      ['streams', counts(t)],
      ['options', t.options],
      ['created', t.created_at],
      ['updated', t.updated_at],
    ],
    [
      { header: 'FIELD', get: (r) => r[0] },
      { header: 'VALUE', get: (r) => r[1] },
    ],
  );
}

/** The targets commands. */
export const targets: Resource = {
  usage: `stream-coordinator targets <command>

  list                                   your targets (all targets for an admin)
  show <target>                          one target with its stream counts
  create --engine E [--engine E]... [--stage S] [--weight W] [--option k=v]... [--options JSON]
  update <target> [--engine E]... [--stage S] [--weight W] [--option k=v]... [--unset k]...
  delete <target>                        refused (exit 5) while the target has streams

  Stages: ${STAGES.join(', ')}. Option values are JSON when they parse as JSON (300, true,
  [1,2]), strings otherwise; update merges options key by key and --unset removes one.`,

  async run(sub: string | undefined, args: string[], ctx: Ctx): Promise<void> {
    const { o } = ctx;
    switch (sub) {
      case 'list': {
        positionals(parse(args), []);
        const r = await ctx.client().call<Targets>('GET', '/v1/targets');
        return print(o, r.targets, () =>
          table(r.targets, [
            { header: 'ID', get: (t) => t.id },
            { header: 'OWNER', get: (t) => t.owner },
            { header: 'STAGE', get: (t) => t.stage },
            { header: 'WEIGHT', get: (t) => t.weight, right: true },
            { header: 'ENGINES', get: (t) => t.engines.join(',') },
            { header: 'CREATED', get: (t) => t.created_at },
          ]),
        );
      }
      case 'show': {
        const [id] = positionals(parse(args), ['target']);
        const t = await ctx.client().call<Target>('GET', `/v1/targets/${seg(id!)}`);
        return print(o, t, () => details(t));
      }
      case 'create': {
        const p = parse(args, FIELDS);
        positionals(p, []);
        const body = fields(p, false);
        if (!body.engines) throw usage('create needs at least one --engine');
        const r = await ctx.client().call<TargetCreated>('POST', '/v1/targets', body);
        return print(o, r, () => r.target_id);
      }
      case 'update': {
        const p = parse(args, FIELDS);
        const [id] = positionals(p, ['target']);
        const body = fields(p, true);
        if (Object.keys(body).length === 0) throw usage('update needs something to change (--engine, --stage, --weight, --option, --options, --unset)');
        const t = await ctx.client().call<Target>('PATCH', `/v1/targets/${seg(id!)}`, body);
        return print(o, t, () => details(t));
      }
      case 'delete': {
        const [id] = positionals(parse(args), ['target']);
        await ctx.client().call('DELETE', `/v1/targets/${seg(id!)}`);
        return print(o, { deleted: id }, () => `deleted target ${id}`);
      }
      default:
        throw usage(sub ? `unknown command "targets ${sub}"` : 'targets needs a command');
    }
  },
};
