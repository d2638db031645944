/**
 * The custom convict formats the schema uses (registered when this module is imported):
 * worker counts, IP/CIDR lists, host:port lists, positive integers, write concerns, malloc
 * libraries.
 */
import convict from 'convict';
import { parseRange } from '../ip-ranges';


/**
 * A string's integer when it is only digits, else the string itself, which the format's
 * validation then refuses: convict's own coercion reads "8443x" as 8443 (parseInt), and
 * `Number` reads "0x20" as 32.
 */
function digits(value: string): number | string {
  return /^\d+$/.test(value) ? Number(value) : value;
}

function commaList(value: unknown): unknown {
  return typeof value === 'string' ? value.split(',').map((s) => s.trim()).filter(Boolean) : value;
}

convict.addFormat({
  name: 'workers',
  validate(value: unknown) {
    if (value === 'auto') return;
    if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > 256) {
      throw new Error('must be "auto" or an integer from 1 to 256');
    }
  },
  coerce: (value: string) => (value === 'auto' ? value : digits(value)),
});

// Built-in formats, coerced strictly from strings (environment variables, and strings in a
// file): convict reads any boolean string but "false" as true, so `SC_..._OPEN_REGISTRATION=0`
// would have opened registration.
convict.addFormat({
  name: 'boolean',
  validate(value: unknown) {
    if (typeof value !== 'boolean') throw new Error('must be true or false');
  },
  coerce: (value: string) => (/^true$/i.test(value) ? true : /^false$/i.test(value) ? false : value),
});

/** An integer format within [min, max], read from digits only ({@link digits}); `message` says what it must be. */
function integerFormat(name: string, min: number, max: number, message: string): void {
  convict.addFormat({
    name,
    validate(value: unknown) {
      if (!Number.isInteger(value) || (value as number) < min || (value as number) > max) throw new Error(message);
    },
    coerce: digits,
  });
}

integerFormat('nat', 0, Infinity, 'must be an integer ≥ 0');

integerFormat('port', 0, 65535, 'ports must be within range 0 - 65535');

convict.addFormat({
  name: 'ip-list',
  validate(value: unknown) {
    if (!Array.isArray(value)) throw new Error('must be a list of IP addresses or CIDR ranges');
    for (const v of value) {
      if (typeof v !== 'string' || !parseRange(v)) throw new Error(`"${String(v)}" is not an IP address or CIDR range`);
    }
  },
  coerce: commaList,
});

convict.addFormat({
  name: 'host-port-list',
  validate(value: unknown) {
    if (!Array.isArray(value)) throw new Error('must be a list of host:port');
    for (const v of value) {
      if (typeof v !== 'string' || !/^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(v)) {
        throw new Error(`"${String(v)}" is not host:port`);
      }
    }
  },
  coerce: commaList,
});

integerFormat('positive-int', 1, Infinity, 'must be an integer ≥ 1');

// Core heartbeat seconds: uWS takes a socket's idle timeout (twice the heartbeat) only up to
// 960 s, so a longer heartbeat would be cut short silently on the uws transport.
integerFormat('heartbeat-seconds', 1, 480, 'must be an integer from 1 to 480');

convict.addFormat({
  name: 'write-concern',
  validate(value: unknown) {
    if (value !== 'majority' && !(typeof value === 'string' && /^\d{1,2}$/.test(value))) throw new Error('must be "majority" or a number of members');
  },
});

convict.addFormat({
  name: 'malloc-library',
  validate(value: unknown) {
    if (value !== 'auto' && value !== 'glibc' && !(typeof value === 'string' && value.startsWith('/'))) {
      throw new Error('must be "auto", "glibc" or the absolute path of a malloc library');
    }
  },
});
