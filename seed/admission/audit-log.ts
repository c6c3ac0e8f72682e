import { open, type FileHandle } from 'node:fs/promises'
import type { Logger } from 'pino'

export type AuditEventKind = 'issue' | 'refuse' | 'revoke' | 'pull' | 'join-token-create'

export interface AuditEvent {
  event: AuditEventKind
  peerId?: string
  /** Token subject, when it differs from or precedes a PeerId. */
  subject?: string
  reason?: string
  scope?: string[]
  repository?: string
  jti?: string
  /** Remote address of the request. */
  remote?: string
}

export interface AuditLogInit {
  /** The log file (`<dataDir>/admission/audit.log`), opened for appending with mode 0600. */
  path: string
}

export interface AuditLogComponents {
  logger: Logger
  /** Milliseconds since the epoch. */
  now?: () => number
}

const FIELDS = ['peerId', 'subject', 'reason', 'scope', 'repository', 'jti', 'remote'] as const
export const REDACTED = '[redacted]'

/** Compact JWS/JWE (a base64url JSON header `eyJ…` then a dot), a join token, or an Authorization credential. */
const SECRET_SHAPES = [/eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/, /pjt_[A-Za-z0-9_-]{8,}/, /\b(?:bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}/i]

/** True when the text contains something that looks like a token or credential. */
export function looksLikeSecret(text: string): boolean {
  return SECRET_SHAPES.some((re) => re.test(text))
}

/**
 * The admission audit trail: one JSON object per line. Only the known fields are written,
 * and a field whose value looks like a token or credential is replaced by "[redacted]".
 */
export class AuditLog {
  readonly #fh: FileHandle
  readonly #logger: Logger
  readonly #now: () => number
  #tail: Promise<void> = Promise.resolve()
  #closed = false

  private constructor(fh: FileHandle, c: AuditLogComponents) {
    this.#fh = fh
    this.#logger = c.logger
    this.#now = c.now ?? Date.now
  }

  static async open(init: AuditLogInit, c: AuditLogComponents): Promise<AuditLog> {
    return new AuditLog(await open(init.path, 'a', 0o600), c)
  }

  /** Queues one line. Never throws: a write failure is logged, and an event after close() is dropped with a warning. */
  record(event: AuditEvent): void {
    if (this.#closed) {
      this.#logger.warn({ event: event.event }, 'audit event after close dropped')
      return
    }
    const line = `${JSON.stringify(sanitise(event, this.#now()))}\n`
    this.#tail = this.#tail.then(async () => {
      try {
        await this.#fh.appendFile(line)
      } catch (err) {
        this.#logger.error({ err }, 'audit log write failed')
      }
    })
  }

  /** Resolves when every queued line has been written. */
  flush(): Promise<void> {
    return this.#tail
  }

  /** Writes what is queued, syncs and closes the file. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#tail
    await this.#fh.sync().catch(() => undefined)
    await this.#fh.close()
  }
}

function sanitise(event: AuditEvent, now: number): Record<string, unknown> {
  const kind = String(event.event)
  const out: Record<string, unknown> = { time: new Date(now).toISOString(), event: looksLikeSecret(kind) ? REDACTED : kind }
  for (const key of FIELDS) {
    const value: unknown = event[key]
    if (value === undefined) continue
    if (Array.isArray(value)) out[key] = value.some((v) => looksLikeSecret(String(v))) ? REDACTED : value.map(String)
    else out[key] = looksLikeSecret(String(value)) ? REDACTED : String(value)
  }
  return out
}
