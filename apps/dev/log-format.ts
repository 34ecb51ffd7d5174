// How `npm start` shows the broker's and worker's logs: the JSON lines they write in production, made readable
// for a person with pino-pretty (a devDependency, present after `npm ci`).

/** Turns one line a child wrote into what the terminal shows, or null to leave it out. */
export type LineFormatter = (line: string) => string | null;

/** Nest's boot chatter (a line per module and per route, ~70 in all): useful in production logs, noise here. */
const BOOT_CHATTER = new Set(['InstanceLoader', 'RoutesResolver', 'RouterExplorer']);

interface PinoLine {
  level: number;
  time: number;
  msg?: string;
  context?: string;
  req?: { method?: string; url?: string };
  res?: { statusCode?: number };
  responseTime?: number;
}

const asIs: LineFormatter = (line) => line;
/** pino's number for `info`. */
const INFO = 30;

function isPinoLine(value: unknown): value is PinoLine {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as PinoLine).level === 'number' &&
    typeof (value as PinoLine).time === 'number'
  );
}

/** `GET /api/me 401 3ms` for a request line, `(Context) message` for the rest. */
function messageOf(log: PinoLine): string {
  if (log.req !== undefined && log.res !== undefined) {
    return `${log.req.method} ${log.req.url} ${log.res.statusCode} ${log.responseTime ?? '?'}ms`;
  }
  return log.context === undefined ? String(log.msg ?? '') : `(${log.context}) ${log.msg ?? ''}`;
}

/**
 * A formatter that prints pino's JSON lines as `[HH:MM:ss.l] INFO: message` (errors keep their stack), without
 * Nest's boot chatter; other lines pass as they are. Without pino-pretty (an image built with production dependencies only) lines stay JSON.
 */
export async function humanReadableLogs(colorize: boolean): Promise<LineFormatter> {
  let prettyFactory: typeof import('pino-pretty').prettyFactory;
  try {
    ({ prettyFactory } = await import('pino-pretty'));
  } catch {
    return asIs;
  }
  const pretty = prettyFactory({
    colorize,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,context,req,res,responseTime,reqId',
    singleLine: true,
    messageFormat: (log) => messageOf(log as unknown as PinoLine),
  });
  return (line) => {
    if (!line.startsWith('{')) return line;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      return line;
    }
    if (!isPinoLine(parsed)) return line;
    if (parsed.level <= INFO && parsed.context !== undefined && BOOT_CHATTER.has(parsed.context)) return null;
    return pretty(parsed).replace(/\n+$/, '');
  };
}
