import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { decodeJwt } from 'jose'
import type { Logger } from 'pino'
import { signProof } from '../../content/admission/proof.js'
import { MAX_TOKEN_LENGTH } from '../../protocol/admission.js'
import {
  DEFAULT_MAX_BACKOFF_MS,
  DEFAULT_MIN_BACKOFF_MS,
  DEFAULT_REFRESH_AT,
  DEFAULT_SEED_ISSUER,
  DEFAULT_SEED_REQUEST_TIMEOUT_MS,
  MAX_ENROLLMENT_ANSWER_BYTES,
  TOKEN_FILE,
} from './constants.js'
import { AdmissionRefusedError, SeedAnswerInvalidError } from './errors.js'
import { readOidcTokenFile } from './oidc-token-file.js'
import { seedBase, seedFailure, seedRequest } from './seed-http.js'
import { admissionStatePath, isRecord, readStateFile, writeStateFile } from './state-file.js'

export interface TokenManagerInit {
  /** The seed's base URL. */
  seedUrl: string
  /** The seed's issuer name, which proofs are signed for; default DEFAULT_SEED_ISSUER. */
  issuer?: string
  /** A join token from `pollen-seed join-token create`, to enroll when no valid token is held. */
  joinToken?: string
  /**
   * A file holding an OIDC token the seed trusts (e.g. a projected Kubernetes service-account
   * token), read afresh for every enrollment. Preferred over `joinToken` when both are given.
   */
  oidcTokenFile?: string
  /** Fraction of a token's lifetime after which it is refreshed, in (0, 1). */
  refreshAt?: number
  minBackoffMs?: number
  maxBackoffMs?: number
  requestTimeoutMs?: number
  /** The agent's data dir; the token is kept in `<dataDir>/admission/token.json` (0600). */
  dataDir: string
}

export interface TokenManagerComponents {
  /** The agent's libp2p Ed25519 identity; tokens are bound to its PeerId. */
  privateKey: PrivateKey
  logger: Logger
  now?: () => number
  /** Called whenever the held token changes (loaded, enrolled, refreshed), with its expiry (ms). */
  onRefresh?: (expiresAt: number) => void
  /** Called for every failed attempt: SeedUnavailableError, SeedAnswerInvalidError, AdmissionRefusedError or OidcTokenUnavailableError. */
  onFailure?: (err: Error) => void
}

interface HeldToken {
  token: string
  /** ms since the epoch, as the seed said. */
  expiresAt: number
  /** Local time the token arrived; the refresh point is measured from it. */
  receivedAt: number
}

type Plan = { how: 'refresh'; token: string } | { how: 'join-token'; joinToken: string } | { how: 'oidc'; file: string }

/** Node's timers overflow past this. */
const MAX_TIMER_MS = 2 ** 31 - 1

/**
 * Holds the agent's admission token: loads the persisted one, enrolls with the OIDC token file's
 * current token (or else the join token) when there is none, refreshes it at `refreshAt` of its
 * lifetime with the current token, and after expiry (or a refused refresh) enrolls again.
 * Failures are retried in the background with jittered exponential backoff between minBackoffMs
 * and maxBackoffMs; a refusal by the seed waits maxBackoffMs. Every attempt signs a proof for a
 * new second, since the seed accepts one proof per PeerId and second. Tokens, the OIDC token and
 * the join token are never logged.
 */
export class TokenManager {
  readonly #seedUrl: string
  readonly #issuer: string
  readonly #joinToken: string | undefined
  readonly #oidcTokenFile: string | undefined
  readonly #refreshAt: number
  readonly #minBackoffMs: number
  readonly #maxBackoffMs: number
  readonly #timeoutMs: number
  readonly #path: string
  readonly #c: TokenManagerComponents
  readonly #logger: Logger
  readonly #now: () => number
  readonly #peerId: string
  readonly #abort = new AbortController()
  #held: HeldToken | undefined
  #timer: NodeJS.Timeout | undefined
  #inflight: Promise<void> | undefined
  #failures = 0
  #lastProofS = -1
  /** The last refresh was refused: enroll next, if there is something to enroll with. */
  #refreshRefused = false
  #idle = false

  /** Throws RangeError/TypeError for out-of-range settings or a seed URL that is not http(s). */
  constructor(init: TokenManagerInit, c: TokenManagerComponents) {
    this.#seedUrl = seedBase(init.seedUrl)
    this.#issuer = init.issuer ?? DEFAULT_SEED_ISSUER
    this.#joinToken = init.joinToken === '' ? undefined : init.joinToken
    this.#oidcTokenFile = init.oidcTokenFile === '' ? undefined : init.oidcTokenFile
    this.#refreshAt = init.refreshAt ?? DEFAULT_REFRESH_AT
    this.#minBackoffMs = init.minBackoffMs ?? DEFAULT_MIN_BACKOFF_MS
    this.#maxBackoffMs = init.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS
    this.#timeoutMs = init.requestTimeoutMs ?? DEFAULT_SEED_REQUEST_TIMEOUT_MS
    if (this.#issuer === '') throw new TypeError('token manager needs the seed issuer')
    if (!(this.#refreshAt > 0 && this.#refreshAt < 1)) throw new RangeError('refreshAt must be between 0 and 1')
    if (!(this.#minBackoffMs > 0 && this.#maxBackoffMs >= this.#minBackoffMs)) throw new RangeError('backoff bounds must satisfy 0 < min <= max')
    if (!(this.#timeoutMs > 0)) throw new RangeError('request timeout must be positive')
    this.#path = admissionStatePath(init.dataDir, TOKEN_FILE)
    this.#c = c
    this.#logger = c.logger.child({ component: 'token-manager' })
    this.#now = c.now ?? Date.now
    this.#peerId = peerIdFromPrivateKey(c.privateKey).toString()
  }

  /** The current token; undefined when none is held or it has expired. */
  current(): string | undefined {
    return this.#valid()?.token
  }

  /** The current token's expiry (ms since the epoch); undefined when current() is. */
  expiresAt(): number | undefined {
    return this.#valid()?.expiresAt
  }

  valid(): boolean {
    return this.#valid() !== undefined
  }

  /**
   * Loads the persisted token. When it is still valid, schedules its refresh and resolves;
   * otherwise makes the first enrollment attempt (at most requestTimeoutMs) before resolving.
   * Never throws for the seed being unreachable or refusing: later attempts run in the background.
   */
  async start(): Promise<void> {
    await this.#load()
    if (this.#held !== undefined) this.#scheduleRefresh()
    else await this.#run()
  }

  /** Clears timers and aborts an attempt under way; resolves when it has settled. */
  async stop(): Promise<void> {
    this.#abort.abort()
    clearTimeout(this.#timer)
    await this.#inflight
  }

  #valid(): HeldToken | undefined {
    const held = this.#held
    return held !== undefined && this.#now() < held.expiresAt ? held : undefined
  }

  #schedule(delayMs: number): void {
    clearTimeout(this.#timer)
    if (this.#abort.signal.aborted) return
    this.#timer = setTimeout(() => void this.#run(), Math.min(Math.max(0, Math.ceil(delayMs)), MAX_TIMER_MS))
    this.#timer.unref()
  }

  #scheduleRefresh(): void {
    const held = this.#held as HeldToken
    const due = held.receivedAt + this.#refreshAt * (held.expiresAt - held.receivedAt)
    this.#schedule(due - this.#now())
  }

  /** Exponential in the number of consecutive failures, jittered between half and all of the ceiling. */
  #backoff(): number {
    const ceiling = Math.min(this.#maxBackoffMs, this.#minBackoffMs * 2 ** Math.min(this.#failures, 30))
    return Math.max(this.#minBackoffMs, Math.round(ceiling / 2 + (Math.random() * ceiling) / 2))
  }

  #plan(): Plan | undefined {
    const held = this.#valid()
    const canEnroll = this.#oidcTokenFile !== undefined || this.#joinToken !== undefined
    if (held !== undefined && !(this.#refreshRefused && canEnroll)) return { how: 'refresh', token: held.token }
    if (this.#oidcTokenFile !== undefined) return { how: 'oidc', file: this.#oidcTokenFile }
    if (this.#joinToken !== undefined) return { how: 'join-token', joinToken: this.#joinToken }
    return undefined
  }

  async #run(): Promise<void> {
    if (this.#abort.signal.aborted || this.#inflight !== undefined) return
    const nowS = Math.floor(this.#now() / 1000)
    if (nowS <= this.#lastProofS) {
      this.#schedule((this.#lastProofS + 1) * 1000 - this.#now() + 10)
      return
    }
    const plan = this.#plan()
    if (plan === undefined) {
      if (!this.#idle) this.#logger.error('no valid admission token and nothing to enroll with; configure an OIDC token file or a join token')
      this.#idle = true
      return
    }
    this.#idle = false
    this.#inflight = this.#attempt(plan, nowS).finally(() => {
      this.#inflight = undefined
    })
    await this.#inflight
  }

  async #attempt(plan: Plan, nowS: number): Promise<void> {
    try {
      this.#lastProofS = nowS
      const credential = await credentialOf(plan)
      const proof = await signProof(this.#c.privateKey, this.#issuer, nowS)
      const body = { peerId: this.#peerId, proof: { timestamp: proof.timestamp, signature: proof.signature } }
      const answer = await seedRequest(`${this.#seedUrl}/v1/admission`, {
        method: 'POST',
        json: { ...body, ...credential },
        timeoutMs: this.#timeoutMs,
        signal: this.#abort.signal,
        maxBytes: MAX_ENROLLMENT_ANSWER_BYTES,
      })
      if (answer.status !== 200) throw seedFailure(answer, [this.#joinToken ?? '', ...Object.values(credential)])
      const held = this.#parseAnswer(answer.body)
      if (this.#abort.signal.aborted) return
      this.#held = held
      this.#failures = 0
      this.#refreshRefused = false
      this.#logger.info({ how: plan.how, expiresAt: new Date(held.expiresAt).toISOString() }, 'admission token obtained')
      await this.#persist(held)
      this.#c.onRefresh?.(held.expiresAt)
      this.#scheduleRefresh()
    } catch (err) {
      if (this.#abort.signal.aborted) return
      this.#failed(plan, err as Error)
    }
  }

  #failed(plan: Plan, err: Error): void {
    this.#failures++
    const refused = err instanceof AdmissionRefusedError
    // A refused proof (replayed second, clock skew) may pass on a later second: not a verdict on the agent.
    const verdict = refused && !(err.reason === 'signature' && err.message.includes('proof'))
    if (verdict) this.#refreshRefused = plan.how === 'refresh'
    const delayMs = verdict ? this.#maxBackoffMs : this.#backoff()
    const fields = {
      err: err.message,
      code: (err as { code?: unknown }).code,
      how: plan.how,
      attempt: this.#failures,
      retryInMs: delayMs,
      validUntil: this.#valid() === undefined ? undefined : new Date((this.#held as HeldToken).expiresAt).toISOString(),
    }
    if (verdict) this.#logger.error(fields, 'the seed refused admission')
    else this.#logger.warn(fields, 'could not obtain an admission token')
    this.#c.onFailure?.(err)
    this.#schedule(delayMs)
  }

  /** Throws SeedAnswerInvalidError unless the answer holds a token for this PeerId that has not expired. */
  #parseAnswer(body: unknown): HeldToken {
    if (!isRecord(body)) throw new SeedAnswerInvalidError('the enrollment answer is not a JSON object')
    const { token, expiresAt } = body
    if (typeof token !== 'string' || token === '' || token.length > MAX_TOKEN_LENGTH) throw new SeedAnswerInvalidError('the enrollment answer has no token')
    if (typeof expiresAt !== 'number' || !Number.isSafeInteger(expiresAt)) throw new SeedAnswerInvalidError('the enrollment answer has no expiresAt')
    const receivedAt = this.#now()
    if (expiresAt <= receivedAt) throw new SeedAnswerInvalidError('the seed sent a token that has already expired by this clock; check clock sync')
    if (subject(token) !== this.#peerId) throw new SeedAnswerInvalidError('the seed sent a token bound to another PeerId')
    return { token, expiresAt, receivedAt }
  }

  async #persist(held: HeldToken): Promise<void> {
    try {
      await writeStateFile(this.#path, { peerId: this.#peerId, issuer: this.#issuer, ...held })
    } catch (err) {
      this.#logger.warn({ err: (err as Error).message, path: this.#path }, 'could not persist the admission token; it stays in memory')
    }
  }

  /** Takes the persisted token when it is for this PeerId and issuer and still valid; ignores anything else. */
  async #load(): Promise<void> {
    let state
    try {
      state = await readStateFile(this.#path)
    } catch (err) {
      this.#logger.warn({ err: (err as Error).message, path: this.#path }, 'could not read the persisted admission token')
      return
    }
    if (state === undefined) return
    const { peerId, issuer, token, expiresAt, receivedAt } = state
    if (peerId !== this.#peerId || issuer !== this.#issuer) {
      this.#logger.info('ignoring a persisted admission token for another identity or seed')
      return
    }
    const now = this.#now()
    if (typeof token !== 'string' || typeof expiresAt !== 'number' || typeof receivedAt !== 'number' || subject(token) !== this.#peerId) {
      this.#logger.warn({ path: this.#path }, 'ignoring an invalid persisted admission token')
      return
    }
    if (expiresAt <= now) {
      this.#logger.info({ expiredAt: new Date(expiresAt).toISOString() }, 'the persisted admission token has expired')
      return
    }
    this.#held = { token, expiresAt, receivedAt: Math.min(receivedAt, now) }
    this.#logger.info({ expiresAt: new Date(expiresAt).toISOString() }, 'loaded the persisted admission token')
    this.#c.onRefresh?.(expiresAt)
  }
}

/** What the enrollment request carries besides the proof: the current token, the join token, or the OIDC token read now. */
async function credentialOf(plan: Plan): Promise<{ token: string } | { joinToken: string } | { oidcToken: string }> {
  if (plan.how === 'refresh') return { token: plan.token }
  if (plan.how === 'join-token') return { joinToken: plan.joinToken }
  return { oidcToken: await readOidcTokenFile(plan.file) }
}

/** The token's `sub`, read without verifying it (the seed verifies; this only catches a mix-up). */
function subject(token: string): string | undefined {
  try {
    return decodeJwt(token).sub
  } catch {
    return undefined
  }
}
