/**
 * `donors top`, `keys create|list|revoke` and `users create|token|list`: the leaderboard,
 * engine keys and users. Keys and tokens are shown once, when created.
 */
import { num, parse, positionals, seg, str, type Ctx, type Resource } from './args';
import { usage } from './exit';
import { print, table } from './output';
import type { Donors, EngineKeyCreated, EngineKeys, Token, UserCreated, Users } from '../../http/api-schemas';

const ONCE = 'Shown once and stored only as a hash: keep it now.';

/** `donors top [N]`. */
export const donors: Resource = {
  usage: `stream-coordinator donors top [N]    the N donors with the most committed frames (default 20)`,
  async run(sub: string | undefined, args: string[], ctx: Ctx): Promise<void> {
    if (sub !== 'top') throw usage(sub ? `unknown command "donors ${sub}"` : 'donors needs a command');
    const p = parse(args);
    const [n] = positionals(p, [], { rest: true });
    if (p.positionals.length > 1) throw usage(`unexpected argument "${p.positionals[1]}"`);
    const top = num({ values: { n }, positionals: [] }, 'n', 1, 1e6, true, 'N') ?? 20;
    const r = await ctx.client().call<Donors>('GET', `/v1/donors?top=${top}`);
    return print(ctx.o, r.donors, () =>
      table(
        r.donors.map((d, i) => ({ ...d, rank: i + 1 })),
        [
          { header: 'RANK', get: (d) => d.rank, right: true },
          { header: 'DONOR', get: (d) => d.name },
          { header: 'FRAMES', get: (d) => d.frames, right: true },
          { header: 'CORE-HOURS', get: (d) => (d.core_seconds / 3600).toFixed(1), right: true },
          { header: 'SINCE', get: (d) => d.created_at },
        ],
      ),
    );
  },
};

/** `keys create|list|revoke` (admins). */
export const keys: Resource = {
  usage: `stream-coordinator keys <command>        (admins)

  create <engine> [--description TEXT]   a new engine key, printed once
  list                                   all keys (never the keys themselves)
  revoke <key-id>                        revoke; cores using it are disconnected`,
  async run(sub: string | undefined, args: string[], ctx: Ctx): Promise<void> {
    const { o } = ctx;
    switch (sub) {
      case 'create': {
        const p = parse(args, { description: { type: 'string' } });
        const [engine] = positionals(p, ['engine']);
        const description = str(p, 'description');
        const r = await ctx.client().call<EngineKeyCreated>('POST', '/v1/engine-keys', { engine, ...(description !== undefined ? { description } : {}) });
        return print(o, r, () => `key id: ${r.id}\nengine: ${r.engine}\nkey:    ${r.key}\n${ONCE}`);
      }
      case 'list': {
        positionals(parse(args), []);
        const r = await ctx.client().call<EngineKeys>('GET', '/v1/engine-keys');
        return print(o, r.engine_keys, () =>
          table(r.engine_keys, [
            { header: 'ID', get: (k) => k.id },
            { header: 'ENGINE', get: (k) => k.engine },
            { header: 'CREATED', get: (k) => k.created_at },
            { header: 'REVOKED', get: (k) => k.revoked_at },
            { header: 'DESCRIPTION', get: (k) => k.description },
          ]),
        );
      }
      case 'revoke': {
        const [id] = positionals(parse(args), ['key-id']);
        await ctx.client().call('DELETE', `/v1/engine-keys/${seg(id!)}`);
        return print(o, { revoked: id }, () => `revoked key ${id}`);
      }
      default:
        throw usage(sub ? `unknown command "keys ${sub}"` : 'keys needs a command');
    }
  },
};

/** `users create|token|list`. */
export const users: Resource = {
  usage: `stream-coordinator users <command>

  create <name> [--role manager|admin] [--weight W]   (admins) a new user; its token is printed once
  token <name>                          rotate a token (admins, or the user itself); the old one
                                        stops working at once. Rotating your own? Run login again.
  list                                  (admins) all users`,
  async run(sub: string | undefined, args: string[], ctx: Ctx): Promise<void> {
    const { o } = ctx;
    switch (sub) {
      case 'create': {
        const p = parse(args, { role: { type: 'string' }, weight: { type: 'string' } });
        const [name] = positionals(p, ['name']);
        const role = str(p, 'role') ?? 'manager';
        if (role !== 'manager' && role !== 'admin') throw usage('--role must be manager or admin');
        const weight = num(p, 'weight', Number.MIN_VALUE, 1e6);
        const r = await ctx.client().call<UserCreated>('POST', '/v1/users', { name, role, ...(weight !== undefined ? { weight } : {}) });
        return print(o, r, () => `user:  ${r.name} (${r.role})\ntoken: ${r.token}\n${ONCE}`);
      }
      case 'token': {
        const [name] = positionals(parse(args), ['name']);
        const r = await ctx.client().call<Token>('POST', `/v1/users/${seg(name!)}/token`);
        return print(o, { name, token: r.token }, () => `token: ${r.token}\n${ONCE}`);
      }
      case 'list': {
        positionals(parse(args), []);
        const r = await ctx.client().call<Users>('GET', '/v1/users');
        return print(o, r.users, () =>
          table(r.users, [
            { header: 'NAME', get: (u) => u.name },
            { header: 'ROLE', get: (u) => u.role },
            { header: 'WEIGHT', get: (u) => u.weight, right: true },
            { header: 'CREATED', get: (u) => u.created_at },
          ]),
        );
      }
      default:
        throw usage(sub ? `unknown command "users ${sub}"` : 'users needs a command');
    }
  },
};
