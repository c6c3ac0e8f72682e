import type { ChildLoggerOptions, Logger } from 'pino'
import { scrubSecrets } from '../content/log-options.js'
import type { StatusLogEntry } from './status-report.js'

/** How many warnings and errors /v1/status shows. */
export const RECENT_LOG_ENTRIES = 10
const MAX_TEXT = 300

/** The last few warnings and errors, for /v1/status. A ring buffer of `capacity` entries. */
export class RecentLog {
  readonly #capacity: number
  readonly #now: () => number
  readonly #entries: StatusLogEntry[] = []

  constructor(capacity = RECENT_LOG_ENTRIES, now: () => number = Date.now) {
    this.#capacity = capacity
    this.#now = now
  }

  /**
   * Records a call of `logger[level](…args)`: its message and the message of its `err` field,
   * clipped and scrubbed of anything that looks like a credential. Other fields are not kept.
   */
  record(level: StatusLogEntry['level'], component: string | undefined, args: readonly unknown[]): void {
    const [first, second] = args
    const obj = typeof first === 'object' && first !== null ? (first as { err?: unknown; msg?: unknown }) : undefined
    const msg = typeof first === 'string' ? first : typeof second === 'string' ? second : first instanceof Error ? first.message : typeof obj?.msg === 'string' ? obj.msg : ''
    const errField = first instanceof Error ? undefined : obj?.err
    const err = errField instanceof Error ? errField.message : typeof errField === 'string' ? errField : undefined
    const entry: StatusLogEntry = { time: new Date(this.#now()).toISOString(), level, ...(component === undefined ? {} : { component }), msg: clip(msg) }
    if (err !== undefined) entry.err = clip(err)
    this.#entries.push(entry)
    if (this.#entries.length > this.#capacity) this.#entries.shift()
  }

  /** The recorded entries, oldest first. */
  entries(): StatusLogEntry[] {
    return this.#entries.map((e) => ({ ...e }))
  }
}

function clip(text: string): string {
  return scrubSecrets(text).slice(0, MAX_TEXT)
}

const RECORDED: ReadonlySet<string | symbol> = new Set(['warn', 'error', 'fatal'])

/**
 * `logger`, and every child made from it, with warn/error/fatal calls also recorded in
 * `recent` (when the level is enabled), with the child's `component` binding. Everything
 * else is the logger's own behaviour.
 */
export function recordingLogger(logger: Logger, recent: RecentLog): Logger {
  const wrap = (target: Logger, component: string | undefined): Logger =>
    new Proxy(target, {
      get(t, prop) {
        if (RECORDED.has(prop)) {
          const level = prop as StatusLogEntry['level']
          const method = t[level] as (...args: unknown[]) => void
          return (...args: unknown[]) => {
            if (t.isLevelEnabled(level)) recent.record(level, component, args)
            method.apply(t, args)
          }
        }
        if (prop === 'child') {
          return (bindings: Record<string, unknown>, options?: ChildLoggerOptions<never>) =>
            wrap(t.child(bindings, options), typeof bindings.component === 'string' ? bindings.component : component)
        }
        return Reflect.get(t, prop, t) as unknown
      },
    })
  return wrap(logger, undefined)
}
