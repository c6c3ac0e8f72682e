/**
 * Where the seed gets an OIDC issuer's verification keys: a JWKS file (read again when it
 * changes) or an http(s) URL (fetched with a deadline, cached, fetched again for an unknown
 * `kid` at most every cooldown). Nothing here verifies a token.
 */
import { open, stat } from 'node:fs/promises'
import { createLocalJWKSet, createRemoteJWKSet, errors, type CryptoKey, type JWTVerifyGetKey, type KeyObject } from 'jose'
import type { Logger } from 'pino'
import {
  MAX_OIDC_JWKS_FILE_BYTES,
  OIDC_JWKS_COOLDOWN_MS,
  OIDC_JWKS_FILE_CHECK_MS,
  OIDC_JWKS_FILE_MAX_AGE_MS,
  OIDC_JWKS_MAX_AGE_MS,
  OIDC_JWKS_TIMEOUT_MS,
} from './constants.js'
import { OidcKeysUnavailableError, OidcTokenDeniedError } from './errors.js'

export interface OidcKeySourceInit {
  /** A JWKS file path, or an `http://`/`https://` URL. */
  location: string
  /** Deadline of one JWKS fetch; default OIDC_JWKS_TIMEOUT_MS. */
  timeoutMs?: number
  /** A JWKS file is stat'ed for changes at most this often; default OIDC_JWKS_FILE_CHECK_MS. */
  fileCheckMs?: number
}

export interface OidcKeySourceComponents {
  logger: Logger
  /** Milliseconds since the epoch; default Date.now. */
  now?: () => number
}

export interface OidcKeySource {
  /**
   * The key for a token's header, for jose's jwtVerify. Throws OidcTokenDeniedError
   * 'unknown-key' when no key (or several) match the header's `kid` and `alg`, and
   * OidcKeysUnavailableError when the keys cannot be read or fetched.
   */
  getKey: (header: Parameters<JWTVerifyGetKey>[0], token: Parameters<JWTVerifyGetKey>[1]) => Promise<CryptoKey | KeyObject>
  /** Reads a JWKS file now (URLs are fetched on first use). Throws OidcKeysUnavailableError when it is unusable. */
  load(): Promise<void>
}

type LocalSet = ReturnType<typeof createLocalJWKSet>

/** True when `location` names a URL rather than a file. */
export function isJwksUrl(location: string): boolean {
  return /^https?:\/\//i.test(location)
}

/** Returns the key source for a JWKS file path or http(s) URL. */
export function oidcKeySource(init: OidcKeySourceInit, c: OidcKeySourceComponents): OidcKeySource {
  if (isJwksUrl(init.location)) {
    const remote = createRemoteJWKSet(new URL(init.location), {
      timeoutDuration: init.timeoutMs ?? OIDC_JWKS_TIMEOUT_MS,
      cooldownDuration: OIDC_JWKS_COOLDOWN_MS,
      cacheMaxAge: OIDC_JWKS_MAX_AGE_MS,
    })
    return { getKey: (header, token) => guarded(() => remote(header, token), init.location), load: async () => {} }
  }
  return new JwksFile(init, c)
}

/** A JWKS file, stat'ed at most every fileCheckMs and read again when it changed or grew old. The last good set survives a bad rewrite. */
class JwksFile implements OidcKeySource {
  readonly #path: string
  readonly #checkMs: number
  readonly #logger: Logger
  readonly #now: () => number
  #set: LocalSet | undefined
  /** Identity of the file last read: inode, size, mtime. */
  #stamp = ''
  #checkedAt = -Infinity
  #readAt = -Infinity
  #pending: Promise<void> | undefined

  constructor(init: OidcKeySourceInit, c: OidcKeySourceComponents) {
    this.#path = init.location
    this.#checkMs = init.fileCheckMs ?? OIDC_JWKS_FILE_CHECK_MS
    this.#logger = c.logger
    this.#now = c.now ?? Date.now
  }

  async load(): Promise<void> {
    await this.#refresh(true)
  }

  getKey: OidcKeySource['getKey'] = async (header, token) => {
    if (this.#now() - this.#checkedAt >= this.#checkMs) {
      this.#pending ??= this.#refresh(false).finally(() => (this.#pending = undefined))
      await this.#pending
    }
    const set = this.#set
    if (set === undefined) throw new OidcKeysUnavailableError(`OIDC JWKS file ${this.#path} has not been read`)
    return guarded(() => set(header, token), this.#path)
  }

  /** Reads the file when forced, changed or old. Keeps the previous set (and logs) when a re-read fails; throws when there is none. */
  async #refresh(force: boolean): Promise<void> {
    const now = this.#now()
    this.#checkedAt = now
    try {
      const info = await stat(this.#path)
      const stamp = `${info.ino}:${info.size}:${info.mtimeMs}`
      if (!force && this.#set !== undefined && stamp === this.#stamp && now - this.#readAt < OIDC_JWKS_FILE_MAX_AGE_MS) return
      const set = createLocalJWKSet(JSON.parse(await readCapped(this.#path)) as Parameters<typeof createLocalJWKSet>[0])
      if (stamp !== this.#stamp && this.#set !== undefined) this.#logger.info({ path: this.#path, keys: set.jwks().keys.length }, 'OIDC JWKS file changed; keys reloaded')
      this.#set = set
      this.#stamp = stamp
      this.#readAt = now
    } catch (cause) {
      const err = new OidcKeysUnavailableError(`OIDC JWKS file ${this.#path} is unusable: ${(cause as Error).message}`, { cause })
      if (this.#set === undefined) throw err
      this.#logger.warn({ path: this.#path, err: err.message }, 'could not reload the OIDC JWKS file; keeping the keys read before')
    }
  }
}

async function readCapped(path: string): Promise<string> {
  const fh = await open(path, 'r')
  try {
    const buf = Buffer.alloc(MAX_OIDC_JWKS_FILE_BYTES + 1)
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0)
    if (bytesRead > MAX_OIDC_JWKS_FILE_BYTES) throw new Error(`larger than ${MAX_OIDC_JWKS_FILE_BYTES} bytes`)
    return buf.subarray(0, bytesRead).toString('utf8')
  } finally {
    await fh.close()
  }
}

/** Runs a jose key lookup, turning "no such key" into a refusal and every other failure into unavailable keys. */
async function guarded<T>(lookup: () => Promise<T>, where: string): Promise<T> {
  try {
    return await lookup()
  } catch (err) {
    if (err instanceof errors.JWKSNoMatchingKey) throw new OidcTokenDeniedError('unknown-key', 'no key in the issuer\'s JWKS matches the token\'s "kid" and "alg"', { cause: err })
    if (err instanceof errors.JWKSMultipleMatchingKeys) throw new OidcTokenDeniedError('unknown-key', 'several keys in the issuer\'s JWKS match the token; it needs a "kid"', { cause: err })
    if (err instanceof errors.JOSENotSupported) throw new OidcTokenDeniedError('algorithm', 'the token\'s "alg" is not supported', { cause: err })
    if (err instanceof OidcTokenDeniedError || err instanceof OidcKeysUnavailableError) throw err
    throw new OidcKeysUnavailableError(`OIDC keys from ${where} are unavailable: ${(err as Error).message}`, { cause: err })
  }
}
