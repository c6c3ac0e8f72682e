import type { Logger } from 'pino'
import { DEFAULT_REVOCATION_POLL_MS, DEFAULT_SEED_REQUEST_TIMEOUT_MS, MAX_REVOCATIONS_BYTES, REVOCATIONS_FILE } from './constants.js'
import { SeedAnswerInvalidError } from './errors.js'
import { PolledDocument } from './polled-document.js'
import { seedBase } from './seed-http.js'
import { admissionStatePath, isRecord } from './state-file.js'

export interface RevocationCacheInit {
  /** The seed's base URL. */
  seedUrl: string
  /** The agent's data dir; the last list is kept in `<dataDir>/admission/revocations.json`. */
  dataDir: string
  pollMs?: number
  requestTimeoutMs?: number
}

export interface RevocationCacheComponents {
  logger: Logger
  now?: () => number
  /** Called when the list changes (loaded or fetched), with its version and size. */
  onChange?: (version: number, revoked: number) => void
}

/** The seed's revocation list: its version and each revoked PeerId with when it was revoked (ms). */
export interface RevocationList {
  readonly version: number
  readonly revoked: ReadonlyMap<string, number>
}

const MAX_PEER_ID_LENGTH = 128

/**
 * The seed's revoked PeerIds, for AdmissionVerifier's `revoked`. Polled from `GET /v1/revocations`
 * every `pollMs`, so a revocation reaches this agent within about `pollMs`. The last list is
 * persisted and loaded at start. The seed's answer is authoritative: a lower version than the
 * cached one replaces it (with a warning), since only the seed decides who is revoked.
 */
export class RevocationCache {
  readonly #doc: PolledDocument<RevocationList>

  /** Throws RangeError for a non-positive interval or timeout, TypeError for a seed URL that is not http(s). */
  constructor(init: RevocationCacheInit, c: RevocationCacheComponents) {
    const logger = c.logger.child({ component: 'revocation-cache' })
    const pollMs = init.pollMs ?? DEFAULT_REVOCATION_POLL_MS
    const requestTimeoutMs = init.requestTimeoutMs ?? DEFAULT_SEED_REQUEST_TIMEOUT_MS
    if (!(pollMs > 0) || !(requestTimeoutMs > 0)) throw new RangeError('revocation poll interval and request timeout must be positive')
    let previous: number | undefined
    this.#doc = new PolledDocument(
      {
        url: `${seedBase(init.seedUrl)}/v1/revocations`,
        statePath: admissionStatePath(init.dataDir, REVOCATIONS_FILE),
        intervalMs: pollMs,
        requestTimeoutMs,
        maxBytes: MAX_REVOCATIONS_BYTES,
        parse: parseRevocations,
        toJson: (list) => ({ version: list.version, revoked: [...list.revoked].map(([peerId, revokedAt]) => ({ peerId, revokedAt })) }),
      },
      {
        logger,
        now: c.now,
        onChange: (list) => {
          const fields = { version: list.version, revoked: list.revoked.size }
          if (previous !== undefined && list.version < previous) logger.warn({ ...fields, previous }, 'the seed\'s revocation list went back to an earlier version')
          else logger.info(fields, 'revocation list updated')
          previous = list.version
          c.onChange?.(list.version, list.revoked.size)
        },
      },
    )
  }

  /** True when `peerId` (canonical base58btc string, as `PeerId.toString()` gives) is on the cached list. */
  isRevoked(peerId: string): boolean {
    return this.#doc.value?.revoked.has(peerId) ?? false
  }

  /** The cached list's version; undefined until a list was loaded or fetched. */
  get version(): number | undefined {
    return this.#doc.value?.version
  }

  /** When the cached list was last fetched from the seed (ms since the epoch). */
  get fetchedAt(): number | undefined {
    return this.#doc.fetchedAt
  }

  /** Loads the persisted list and starts polling. Never throws for the seed being down. */
  start(): Promise<void> {
    return this.#doc.start()
  }

  /** Fetches the list now. Rejects with SeedUnavailableError or SeedAnswerInvalidError, keeping the cached list. */
  refresh(): Promise<void> {
    return this.#doc.refresh()
  }

  stop(): Promise<void> {
    return this.#doc.stop()
  }
}

/**
 * Parses `{ version, revoked: [{ peerId, revokedAt }] }`. Throws SeedAnswerInvalidError when
 * anything is malformed: a partly readable list is refused whole, never applied in part.
 */
export function parseRevocations(body: unknown): RevocationList {
  if (!isRecord(body) || !Array.isArray(body.revoked)) throw new SeedAnswerInvalidError('the revocation list has no "revoked" array')
  const { version } = body
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 0) throw new SeedAnswerInvalidError('the revocation list has no valid "version"')
  const revoked = new Map<string, number>()
  for (const entry of body.revoked as unknown[]) {
    if (!isRecord(entry)) throw new SeedAnswerInvalidError('a revocation entry is not an object')
    const { peerId, revokedAt } = entry
    if (typeof peerId !== 'string' || peerId === '' || peerId.length > MAX_PEER_ID_LENGTH) throw new SeedAnswerInvalidError('a revocation entry has no valid "peerId"')
    if (typeof revokedAt !== 'number' || !Number.isFinite(revokedAt)) throw new SeedAnswerInvalidError('a revocation entry has no valid "revokedAt"')
    revoked.set(peerId, revokedAt)
  }
  return { version, revoked }
}
