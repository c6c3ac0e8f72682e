import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { dirname } from 'node:path'
import type { Logger } from 'pino'
import { MAX_SCOPE_PATTERNS, parseScopePattern } from '../../protocol/admission.js'
import { readTextIfPresent, writeFileAtomic } from '../../content/atomic-file.js'
import {
  DEFAULT_JOIN_TOKEN_SCOPE,
  DEFAULT_JOIN_TOKEN_TTL_MS,
  DEFAULT_JOIN_TOKEN_USES,
  JOIN_TOKEN_PREFIX,
  JOIN_TOKEN_RETENTION_MS,
  JOIN_TOKEN_SECRET_BYTES,
} from './constants.js'
import { AdmissionStateInvalidError, JoinTokenDeniedError } from './errors.js'
import { FileLock } from './file-lock.js'

export interface JoinTokenStoreInit {
  /** The JSON state file (`<dataDir>/admission/join-tokens.json`). */
  path: string
}

export interface JoinTokenStoreComponents {
  logger: Logger
  /** Milliseconds since the epoch. */
  now?: () => number
}

export interface CreateJoinTokenOptions {
  ttlMs?: number
  /** Redemptions allowed: a positive integer, or `Infinity` for unlimited. Default 1. */
  uses?: number
  /** Repository patterns the admitted node may pull (grammar in protocol/admission.ts). Default `['**']`. */
  scope?: string[]
}

export interface CreatedJoinToken {
  /** The secret, `pjt_` + 43 base64url characters. Returned once; only its hash is stored. */
  token: string
  id: string
  /** Milliseconds since the epoch. */
  expiresAt: number
}

export interface JoinTokenInfo {
  id: string
  createdAt: number
  expiresAt: number
  /** null when unlimited. */
  usesLeft: number | null
  scope: string[]
  state: 'active' | 'expired' | 'used-up'
}

interface TokenRecord {
  id: string
  /** sha256 of the whole token string, hex. */
  hash: string
  createdAt: string
  expiresAt: string
  usesLeft: number | null
  scope: string[]
}

interface StateFile {
  format: 1
  tokens: TokenRecord[]
}

const TOKEN_SHAPE = new RegExp(`^${JOIN_TOKEN_PREFIX}[A-Za-z0-9_-]{43}$`)

/**
 * Join tokens that admit new nodes, kept in one JSON file that holds only their sha256
 * hashes. Every operation reads the file afresh and mutations hold a FileLock, so a CLI
 * process may create, list and revoke tokens beside the running seed.
 */
export class JoinTokenStore {
  readonly #path: string
  readonly #lock: FileLock
  readonly #logger: Logger
  readonly #now: () => number

  private constructor(init: JoinTokenStoreInit, c: JoinTokenStoreComponents) {
    this.#path = init.path
    this.#lock = new FileLock({ path: `${init.path}.lock` })
    this.#logger = c.logger
    this.#now = c.now ?? Date.now
  }

  /** Opens the store, creating its directory. Throws AdmissionStateInvalidError when the file is corrupt. */
  static async open(init: JoinTokenStoreInit, c: JoinTokenStoreComponents): Promise<JoinTokenStore> {
    await mkdir(dirname(init.path), { recursive: true, mode: 0o700 })
    const store = new JoinTokenStore(init, c)
    await store.#read()
    return store
  }

  /**
   * Creates a token and returns its secret (the only time it is available).
   * Throws RangeError for a bad ttl or use count, ScopePatternInvalidError for a bad pattern.
   */
  async create(options: CreateJoinTokenOptions = {}): Promise<CreatedJoinToken> {
    const ttlMs = options.ttlMs ?? DEFAULT_JOIN_TOKEN_TTL_MS
    const uses = options.uses ?? DEFAULT_JOIN_TOKEN_USES
    const scope = [...(options.scope ?? DEFAULT_JOIN_TOKEN_SCOPE)]
    if (!(Number.isFinite(ttlMs) && ttlMs > 0)) throw new RangeError('ttlMs must be a positive number of milliseconds')
    if (!(uses === Infinity || (Number.isSafeInteger(uses) && uses > 0))) throw new RangeError('uses must be a positive integer or Infinity')
    if (scope.length === 0 || scope.length > MAX_SCOPE_PATTERNS) throw new RangeError(`scope must name 1 to ${MAX_SCOPE_PATTERNS} repository patterns`)
    for (const pattern of scope) parseScopePattern(pattern)

    const token = JOIN_TOKEN_PREFIX + randomBytes(JOIN_TOKEN_SECRET_BYTES).toString('base64url')
    const id = randomBytes(8).toString('hex')
    const now = this.#now()
    const expiresAt = now + ttlMs
    await this.#mutate((state) => {
      state.tokens.push({
        id,
        hash: hashOf(token).toString('hex'),
        createdAt: new Date(now).toISOString(),
        expiresAt: new Date(expiresAt).toISOString(),
        usesLeft: uses === Infinity ? null : uses,
        scope,
      })
    })
    this.#logger.info({ id, expiresAt: new Date(expiresAt).toISOString(), uses: uses === Infinity ? 'unlimited' : uses, scope }, 'join token created')
    return { token, id, expiresAt }
  }

  /**
   * Uses the token once and returns what it grants. Decrements atomically: of concurrent
   * redemptions of a one-use token exactly one succeeds.
   * Throws JoinTokenDeniedError ('unknown' | 'expired' | 'used-up'), never echoing the token.
   */
  async redeem(token: string): Promise<{ id: string; scope: string[] }> {
    const hash = hashOf(token)
    const shaped = TOKEN_SHAPE.test(token)
    return this.#mutate((state) => {
      let record: TokenRecord | undefined
      for (const r of state.tokens) {
        if (timingSafeEqual(Buffer.from(r.hash, 'hex'), hash) && shaped) record = r
      }
      if (record === undefined) throw new JoinTokenDeniedError('unknown')
      if (this.#now() >= Date.parse(record.expiresAt)) throw new JoinTokenDeniedError('expired')
      if (record.usesLeft !== null && record.usesLeft <= 0) throw new JoinTokenDeniedError('used-up')
      if (record.usesLeft !== null) record.usesLeft -= 1
      return { id: record.id, scope: [...record.scope] }
    })
  }

  /** Every remembered token, oldest first, without secrets or hashes. */
  async list(): Promise<JoinTokenInfo[]> {
    const now = this.#now()
    return (await this.#read()).tokens.map((r) => {
      const expiresAt = Date.parse(r.expiresAt)
      const state = now >= expiresAt ? 'expired' : r.usesLeft === 0 ? 'used-up' : 'active'
      return { id: r.id, createdAt: Date.parse(r.createdAt), expiresAt, usesLeft: r.usesLeft, scope: [...r.scope], state }
    })
  }

  /** Forgets the token with this id, so redeeming it fails as 'unknown'. Resolves false when there was none. */
  async revoke(id: string): Promise<boolean> {
    const removed = await this.#mutate((state) => {
      const before = state.tokens.length
      state.tokens = state.tokens.filter((r) => r.id !== id)
      return state.tokens.length !== before
    })
    if (removed) this.#logger.info({ id }, 'join token revoked')
    return removed
  }

  /** Runs `change` on the current state under the lock and writes the result, pruning long-expired tokens. A throw from `change` writes nothing. */
  #mutate<T>(change: (state: StateFile) => T): Promise<T> {
    return this.#lock.run(async () => {
      const state = await this.#read()
      const before = JSON.stringify(state)
      const result = change(state)
      const cutoff = this.#now() - JOIN_TOKEN_RETENTION_MS
      state.tokens = state.tokens.filter((r) => Date.parse(r.expiresAt) > cutoff)
      if (JSON.stringify(state) !== before) await writeFileAtomic(this.#path, `${JSON.stringify(state, null, 2)}\n`)
      return result
    })
  }

  async #read(): Promise<StateFile> {
    const text = await readTextIfPresent(this.#path)
    if (text === undefined) return { format: 1, tokens: [] }
    let state: StateFile
    try {
      state = JSON.parse(text) as StateFile
    } catch (cause) {
      throw new AdmissionStateInvalidError(this.#path, 'not JSON', { cause })
    }
    if (state?.format !== 1 || !Array.isArray(state.tokens) || !state.tokens.every(isRecord)) {
      throw new AdmissionStateInvalidError(this.#path, 'not a format 1 join-token file')
    }
    return state
  }
}

function hashOf(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest()
}

function isRecord(r: unknown): r is TokenRecord {
  const t = r as TokenRecord
  return (
    typeof t === 'object' &&
    t !== null &&
    typeof t.id === 'string' &&
    /^[0-9a-f]{64}$/.test(t.hash) &&
    !Number.isNaN(Date.parse(t.createdAt)) &&
    !Number.isNaN(Date.parse(t.expiresAt)) &&
    (t.usesLeft === null || Number.isSafeInteger(t.usesLeft)) &&
    Array.isArray(t.scope) &&
    t.scope.every((s) => typeof s === 'string')
  )
}
