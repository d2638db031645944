/**
 * `login`, `logout` and `whoami`: where the server is and which token to use.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parse, positionals, str, type Ctx, type Resource } from './args';
import { ApiClient } from './client';
import { CliError, EXIT, usage } from './exit';
import { ENV, configPath, normaliseUrl, readConfigFile, writeConfigFile, type Connection } from './config';
import { print } from './output';
import type { Me } from '../../http/api-schemas';

/** Reads a line from a terminal without echoing it. */
function readHidden(question: string, ctx: Ctx): Promise<string> {
  const input = process.stdin;
  ctx.o.err.write(question);
  input.setRawMode(true);
  input.resume();
  input.setEncoding('utf8');
  let line = '';
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      input.setRawMode(false);
      input.pause();
      input.off('data', onData);
      ctx.o.err.write('\n');
      if (err) reject(err);
      else resolve(line);
    };
    const onData = (s: string) => {
      for (const ch of s) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003' || ch === '\u0004') return done(usage('cancelled'));
        if (ch === '\u007f' || ch === '\b') line = line.slice(0, -1);
        else line += ch;
      }
    };
    input.on('data', onData);
  });
}

/** The first line of piped standard input. */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0]!.trim();
}

/** The caller, checked against the server. */
async function me(client: ApiClient): Promise<Me> {
  return client.call<Me>('GET', '/v1/me');
}

/** `login`. */
export const login: Resource = {
  usage: `stream-coordinator login --url URL [--ca FILE] [--token TOKEN]

  Checks the token against the server (GET /v1/me) and keeps URL, CA path and token in
  ${'$'}XDG_CONFIG_HOME/stream-coordinator/cli.json (default ~/.config/...), mode 0600.
  Without --token the token is read from standard input: a hidden prompt on a terminal,
  the first line otherwise (keeps it out of shell history: login --url U < token.txt).
  Without --url the one already saved is kept.`,
  async run(sub: string | undefined, args: string[], ctx: Ctx): Promise<void> {
    const p = parse(sub === undefined ? args : [sub, ...args], { url: { type: 'string' }, ca: { type: 'string' }, token: { type: 'string' } });
    positionals(p, []);
    const file = configPath(ctx.env);
    const saved = readConfigFile(file, (l) => ctx.o.err.write(`${l}\n`));
    const rawUrl = str(p, 'url') ?? saved.url;
    if (!rawUrl) throw usage('login needs --url (e.g. https://coordinator.example.org:8443)');
    const url = normaliseUrl(rawUrl);
    const caArg = str(p, 'ca');
    const ca = caArg !== undefined ? path.resolve(caArg) : str(p, 'url') === undefined ? saved.ca : undefined;
    if (ca !== undefined && !fs.existsSync(ca)) throw usage(`no CA file at ${ca}`);
    let token = str(p, 'token');
    if (token === undefined) token = process.stdin.isTTY ? await readHidden(`Token for ${url}: `, ctx) : await readStdin();
    token = token.trim();
    if (!token) throw usage('no token given');
    const conn: Connection = { url, ca, token };
    const client = new ApiClient(conn);
    try {
      const who = await me(client);
      if (who.role === 'donor') throw new CliError('that is a donor token; the manager commands need a manager or admin token', EXIT.auth);
      writeConfigFile(file, conn);
      print(ctx.o, { url, ca: ca ?? null, name: who.name, role: who.role, config: file }, () => `Logged in to ${url} as ${who.name} (${who.role}); saved in ${file} (mode 0600).`);
    } finally {
      client.close();
    }
  },
};

/** `logout`: forgets the saved token (the token itself stays valid; rotate it with `users token`). */
export const logout: Resource = {
  usage: 'stream-coordinator logout    removes the saved configuration file',
  async run(sub: string | undefined, args: string[], ctx: Ctx): Promise<void> {
    positionals(parse(sub === undefined ? args : [sub, ...args]), []);
    const file = configPath(ctx.env);
    fs.rmSync(file, { force: true });
    print(ctx.o, { removed: file }, () => `Removed ${file}. The token itself is still valid; rotate it with "users token <name>" if it leaked.`);
  },
};

/** `whoami`: the configured server and the token's user. */
export const whoami: Resource = {
  usage: 'stream-coordinator whoami    the server in use and who the token belongs to',
  async run(sub: string | undefined, args: string[], ctx: Ctx): Promise<void> {
    positionals(parse(sub === undefined ? args : [sub, ...args]), []);
    const who = await me(ctx.client());
    const url = ctx.env[ENV.url] || readConfigFile(configPath(ctx.env), () => undefined).url;
    print(ctx.o, { ...who, url }, () => `${who.name} (${who.role}) on ${url}`);
  },
};
