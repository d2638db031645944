/**
 * Output of the manager commands: aligned tables for people, JSON for scripts, and a
 * progress bar for downloads on a terminal. Everything printed from the server goes
 * through {@link clean}: target options and file names are user data, and control
 * characters in them must not reach the terminal (escape sequences could rewrite it).
 */

/** Where output goes; the process's streams in the CLI. */
export interface Output {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Print JSON instead of tables. */
  json: boolean;
}

/** A string with C0/C1 control characters replaced by `?`. */
export function clean(value: unknown): string {
  const s = value === undefined || value === null ? '-' : typeof value === 'string' ? value : typeof value === 'object' ? JSON.stringify(value) : String(value);
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}

/** A column of a table: a header and how to get the cell from a row. */
export interface Column<T> {
  header: string;
  get: (row: T) => unknown;
  /** Right-align (numbers). */
  right?: boolean;
}

/** Renders rows as a table with a header line, columns separated by two spaces. */
export function table<T>(rows: T[], columns: Array<Column<T>>): string {
  const cells = rows.map((r) => columns.map((c) => clean(c.get(r))));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((row) => row[i]!.length)));
  const line = (values: string[]) =>
    values
      .map((v, i) => (columns[i]!.right ? v.padStart(widths[i]!) : i === values.length - 1 ? v : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.header)), ...cells.map(line)].join('\n');
}

/** Prints a value as JSON (with --json) or the human text. */
export function print(o: Output, value: unknown, human: () => string): void {
  o.out.write(o.json ? `${JSON.stringify(value, null, 2)}\n` : `${human()}\n`);
}

/** Bytes in a short human form (1.5 MiB). */
export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/**
 * A progress bar on stderr, redrawn at most ten times a second; nothing when stderr is
 * not a terminal or output is JSON, so logs and pipes stay clean.
 */
export function progressBar(o: Output, label: string): { update: (done: number, total: number | undefined) => void; end: () => void } {
  if (o.json || !o.err.isTTY) return { update: () => undefined, end: () => undefined };
  const started = Date.now();
  let last = 0;
  let first: number | undefined;
  let drawn = false;
  const draw = (done: number, total: number | undefined) => {
    first ??= done;
    const secs = (Date.now() - started) / 1000;
    const rate = secs > 0 ? (done - first) / secs : 0;
    const width = Math.max(10, Math.min(40, (o.err.columns ?? 80) - label.length - 40));
    const frac = total ? Math.min(1, done / total) : 0;
    const bar = total ? `[${'#'.repeat(Math.round(frac * width)).padEnd(width, '.')}] ${String(Math.floor(frac * 100)).padStart(3)}%` : '';
    o.err.write(`\r\x1b[K${clean(label)} ${bar} ${bytes(done)}${total ? `/${bytes(total)}` : ''} ${bytes(Math.round(rate))}/s`);
    drawn = true;
  };
  let latest: [number, number | undefined] = [0, undefined];
  return {
    update(done, total) {
      latest = [done, total];
      const now = Date.now();
      if (now - last < 100) return;
      last = now;
      draw(done, total);
    },
    end() {
      if (drawn || latest[0] > 0) {
        draw(...latest);
        o.err.write('\n');
      }
    },
  };
}
