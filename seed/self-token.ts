import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import { signAdmissionToken } from '../content/admission/verifier.js'
import type { SigningKey } from './admission/signing-keys.js'

export interface SelfTokenInit {
  issuer: string
  audience: string
  /** The seed's own PeerId: the token's `sub`. */
  peerId: string
  /** Lifetime of each token, as for the agents' tokens. */
  ttlMs: number
  /** Fraction of the lifetime after which the token is signed again. Default 2/3. */
  refreshAt?: number
  /** Pause before trying again when signing failed. Default 5 s. */
  retryMs?: number
}

export interface SelfTokenComponents {
  /** The seed's signing keys (`SigningKeys`); the current one signs. */
  keys: { current(): Promise<SigningKey> }
  logger: Logger
  /** Called after each new token, so that the p2p node presents it to its peers. */
  onRefresh?: () => void
  now?: () => number
}

const DEFAULT_REFRESH_AT = 2 / 3
const DEFAULT_RETRY_MS = 5_000

/**
 * The seed's own admission token, so that enrolled agents (which gate every connection)
 * admit the bootstrap node: `sub` = the seed's PeerId, empty scope (it pulls nothing from
 * peers), the normal lifetime, signed with the current key and signed again at `refreshAt`
 * of its lifetime. The token is never logged.
 */
export class SelfToken {
  readonly #init: Required<SelfTokenInit>
  readonly #c: SelfTokenComponents
  readonly #now: () => number
  #token: string | undefined
  #expiresAt = 0
  #timer: NodeJS.Timeout | undefined
  #stopped = false

  /** Throws RangeError for a lifetime that is not positive or a refreshAt outside (0, 1). */
  constructor(init: SelfTokenInit, c: SelfTokenComponents) {
    this.#init = { refreshAt: DEFAULT_REFRESH_AT, retryMs: DEFAULT_RETRY_MS, ...init }
    if (!(init.ttlMs >= 1000)) throw new RangeError('self token lifetime must be at least 1 s')
    if (!(this.#init.refreshAt > 0 && this.#init.refreshAt < 1)) throw new RangeError('refreshAt must be between 0 and 1')
    this.#c = c
    this.#now = c.now ?? Date.now
  }

  /** The current token; undefined before start() or once it expired without a new one. */
  current(): string | undefined {
    return this.#token !== undefined && this.#now() < this.#expiresAt ? this.#token : undefined
  }

  /** Signs the first token. Throws when it cannot be signed (the signing keys are broken). */
  async start(): Promise<void> {
    await this.#sign()
  }

  stop(): void {
    this.#stopped = true
    clearTimeout(this.#timer)
  }

  async #sign(): Promise<void> {
    const key = await this.#c.keys.current()
    const iat = Math.floor(this.#now() / 1000)
    const exp = iat + Math.floor(this.#init.ttlMs / 1000)
    const claims = { iss: this.#init.issuer, aud: this.#init.audience, sub: this.#init.peerId, iat, nbf: iat, exp, jti: randomBytes(12).toString('base64url'), scope: [] }
    this.#token = await signAdmissionToken(claims, key.privateKey, key.kid)
    this.#expiresAt = exp * 1000
    this.#c.logger.debug({ kid: key.kid, expiresAt: new Date(this.#expiresAt).toISOString() }, 'signed the seed\'s own admission token')
    this.#schedule(this.#init.refreshAt * this.#init.ttlMs)
  }

  #schedule(delayMs: number): void {
    clearTimeout(this.#timer)
    if (this.#stopped) return
    this.#timer = setTimeout(() => {
      this.#sign().then(
        () => this.#c.onRefresh?.(),
        (err: unknown) => {
          this.#c.logger.error({ err: (err as Error).message }, 'could not sign the seed\'s own admission token; retrying')
          this.#schedule(this.#init.retryMs)
        },
      )
    }, Math.max(0, Math.round(delayMs)))
    this.#timer.unref()
  }
}
