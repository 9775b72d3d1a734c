/**
 * Structured logs: one line per event, with levels, through pino. JSON lines when
 * stderr is not a terminal (files, `dcnr up` children, containers); a readable,
 * coloured line on a TTY (pino-pretty). Level: env DCNR_LOG_LEVEL (what the global
 * `--log-level` option sets, so child processes inherit it), default `info`.
 */
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';
import type { ClusterEvent } from './protocol.js';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function logLevelFromEnv(): LogLevel {
  const raw = (process.env.DCNR_LOG_LEVEL ?? '').trim() || 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(raw)) throw new Error(`log level must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(raw)}`);
  return raw as LogLevel;
}

let root: Logger | undefined;

/** The process's root logger (created on first use). */
export function rootLogger(): Logger {
  if (root) return root;
  const level = logLevelFromEnv();
  const stream = process.stderr.isTTY
    ? pretty({ destination: 2, sync: true, colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' })
    : pino.destination({ fd: 2, sync: true });
  root = pino({ level, base: { pid: process.pid } }, stream);
  return root;
}

/** Events an operator must see stand out; the very frequent ones are debug. */
const EVENT_LEVEL: Partial<Record<ClusterEvent['type'], 'debug' | 'info' | 'warn'>> = {
  dead: 'warn',
  fenced: 'warn',
  escalated: 'warn',
  rejected: 'warn',
  refused: 'warn',
  activated: 'debug',
  passivated: 'debug',
};

/** What a component logs: plain lines (info unless said), and cluster events at their level. */
export interface ComponentLog {
  line(text: string, level?: 'debug' | 'info' | 'warn'): void;
  event(e: ClusterEvent): void;
}

/** Logs nothing (library default: a caller that wants logs passes `componentLog(name)`). */
export const silentLog: ComponentLog = { line: () => {}, event: () => {} };

/** A component's logger (`supervisor`, a PNode id): events become structured fields at their level. */
export function componentLog(component: string): ComponentLog {
  const log = rootLogger().child({ component });
  return {
    line: (text, level = 'info') => log[level](text),
    event: (e) => log[EVENT_LEVEL[e.type] ?? 'info']({ event: e }, `${e.type}${'vnode' in e ? ` ${e.vnode}` : ''}${'pnode' in e ? ` ${e.pnode}` : ''}`),
  };
}

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/**
 * One JSON log line of a child process as a readable line (for `dcnr up` on a
 * terminal, whose children log JSON into a pipe); other lines come back unchanged.
 */
export function humanLogLine(line: string): string {
  if (!line.startsWith('{"level":')) return line;
  try {
    const r = JSON.parse(line) as { level: number; time: number; msg?: string };
    const t = new Date(r.time).toTimeString().slice(0, 8);
    return `${t} ${(LEVEL_NAMES[r.level] ?? String(r.level)).padEnd(5)} ${r.msg ?? ''}`;
  } catch {
    return line;
  }
}
