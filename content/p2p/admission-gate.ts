import type { Logger } from 'pino'
import { AdmissionDeniedError, AdmissionKeysUnavailableError, CLOCK_TOLERANCE_S } from '../../protocol/admission.js'
import type { AdmissionGateReason, AdmissionVerdict } from '../../protocol/admission-frames.js'
import { RefusedPeers } from './refused-peers.js'

/** The gate's defaults, in one place. */
export const DEFAULT_ADMISSION_DEADLINE_MS = 5_000
export const DEFAULT_REFUSE_FOR_MS = 60_000
export const DEFAULT_MAX_REFUSED_PEERS = 10_000
export const DEFAULT_MAX_ADMITTED_PEERS = 10_000
/** How often admitted peers are checked against the revocation list (when one is given). */
export const DEFAULT_RECHECK_MS = 30_000
/** A peer refused for what it presented keeps its connection this long, so that the verdict reaches it. */
export const VERDICT_LINGER_MS = 250

export interface AdmissionGateInit {
  /** A connected peer must be admitted within this long. Default DEFAULT_ADMISSION_DEADLINE_MS. */
  deadlineMs?: number
  /** How long a refused peer is kept out (dials and inbound connections denied). Default DEFAULT_REFUSE_FOR_MS. */
  refuseForMs?: number
  maxRefusedPeers?: number
  maxAdmittedPeers?: number
  /** Skew tolerated on a token's exp, as the verifier does. Default CLOCK_TOLERANCE_S. */
  clockToleranceMs?: number
  /** Default DEFAULT_RECHECK_MS. */
  recheckMs?: number
}

/** What the gate needs from a token verifier (AdmissionVerifier fits). */
export interface PeerTokenVerifier {
  /** Resolves with the token's claims when it is valid for `peerId`; throws AdmissionDeniedError otherwise. */
  verify(token: string | undefined, expect: { peerId: string }): Promise<{ exp: number }>
}

/** What the gate does to the network; the libp2p node in production, fakes in tests. */
export interface GateNetwork {
  /** True while at least one connection to the peer is open. */
  isConnected(peerId: string): boolean
  /** Closes every connection to the peer. */
  disconnect(peerId: string): Promise<void>
  /** Removes the peer from the DHT routing table. */
  forget(peerId: string): Promise<void>
}

export interface AdmissionGateComponents {
  logger: Logger
  verifier: PeerTokenVerifier
  /** True for a PeerId whose tokens must be refused (checked again every recheckMs and on recheck()). */
  revoked?: (peerId: string) => boolean
  /** Called once per refusal, with a bounded reason (a metrics label). */
  onRefused?: (peerId: string, reason: AdmissionGateReason) => void
  /** Called when a token names a key we do not know: fetch the keys again. */
  onUnknownKey?: () => void
  now?: () => number
}

interface Admitted {
  until: number
  timer: NodeJS.Timeout
}

/**
 * Connection admission: which remote peers are admitted (until their token's exp), which
 * are waiting to present one, and which were refused. A peer that connects must present a
 * valid token (present()) within deadlineMs; otherwise, or when its token is refused,
 * expires without a newer one, or its PeerId is revoked, it is refused: its connections are
 * closed, it is removed from the routing table and it stays refused for refuseForMs.
 * PeerIds are strings (`peerId.toString()`). Nothing a peer sends can make it throw.
 */
export class AdmissionGate {
  readonly #deadlineMs: number
  readonly #toleranceMs: number
  readonly #maxAdmitted: number
  readonly #c: AdmissionGateComponents
  readonly #now: () => number
  readonly #refused: RefusedPeers<AdmissionGateReason>
  readonly #admitted = new Map<string, Admitted>()
  /** Connected peers not admitted yet: their deadline, and the last reason to retry they were given. */
  readonly #pending = new Map<string, { timer: NodeJS.Timeout; reason?: AdmissionGateReason }>()
  readonly #waiters = new Map<string, Set<(admitted: boolean) => void>>()
  readonly #recheck: NodeJS.Timeout | undefined
  #network: GateNetwork | undefined
  #stopped = false

  /** Throws RangeError for a negative or non-finite duration or a bound below 1. */
  constructor(init: AdmissionGateInit, components: AdmissionGateComponents) {
    this.#deadlineMs = nonNegative(init.deadlineMs ?? DEFAULT_ADMISSION_DEADLINE_MS, 'deadlineMs')
    this.#toleranceMs = nonNegative(init.clockToleranceMs ?? CLOCK_TOLERANCE_S * 1000, 'clockToleranceMs')
    this.#maxAdmitted = init.maxAdmittedPeers ?? DEFAULT_MAX_ADMITTED_PEERS
    if (!(this.#maxAdmitted >= 1)) throw new RangeError('maxAdmittedPeers must be at least 1')
    this.#c = components
    this.#now = components.now ?? Date.now
    this.#refused = new RefusedPeers(
      { refuseForMs: nonNegative(init.refuseForMs ?? DEFAULT_REFUSE_FOR_MS, 'refuseForMs'), maxPeers: init.maxRefusedPeers ?? DEFAULT_MAX_REFUSED_PEERS },
      this.#now,
    )
    if (components.revoked !== undefined) {
      this.#recheck = setInterval(() => this.recheck(), nonNegative(init.recheckMs ?? DEFAULT_RECHECK_MS, 'recheckMs') || DEFAULT_RECHECK_MS)
      this.#recheck.unref()
    }
  }

  get deadlineMs(): number {
    return this.#deadlineMs
  }

  /** Gives the gate its network; until then refusals only change the gate's state. */
  attach(network: GateNetwork): void {
    this.#network = network
  }

  /** A connection to `peerId` opened: unless the peer is admitted, its deadline starts (once). */
  connected(peerId: string): void {
    if (this.#stopped) return
    if (this.#refused.has(peerId)) {
      this.#enforce(peerId, 0)
      return
    }
    if (this.isAdmitted(peerId) || this.#pending.has(peerId)) return
    const timer = setTimeout(() => this.#deadline(peerId), this.#deadlineMs)
    timer.unref()
    this.#pending.set(peerId, { timer })
  }

  /**
   * `peerId` (authenticated by the connection) presented `token`. Returns the verdict to send
   * back: `ok` (admitted until the token's exp), `refused` (the peer is refused; its
   * connections close shortly), or `retry` (the token could not be checked yet: unknown
   * signing key, or no keys; the deadline keeps running). Never throws.
   */
  async present(peerId: string, token: string): Promise<AdmissionVerdict> {
    if (this.#stopped) return { status: 'refused', reason: 'unavailable' }
    if (this.#refused.has(peerId)) return { status: 'refused', reason: this.#refused.reason(peerId) ?? 'error' }
    let exp: number
    try {
      exp = (await this.#c.verifier.verify(token, { peerId })).exp
    } catch (err) {
      const reason = reasonOf(err)
      if (reason === 'error') this.#c.logger.warn({ peer: peerId, err: (err as Error).message }, 'could not check a peer\'s admission token')
      if (reason === 'unknown-key' || reason === 'unavailable') {
        if (reason === 'unknown-key') this.#c.onUnknownKey?.()
        const pending = this.#pending.get(peerId)
        if (pending !== undefined) pending.reason = reason
        return { status: 'retry', reason }
      }
      this.refuse(peerId, reason, VERDICT_LINGER_MS)
      return { status: 'refused', reason }
    }
    if (this.#stopped) return { status: 'refused', reason: 'unavailable' }
    // Refused while we were verifying (the deadline passed): stay refused.
    if (this.#refused.has(peerId)) return { status: 'refused', reason: this.#refused.reason(peerId) ?? 'error' }
    this.#admit(peerId, exp * 1000 + this.#toleranceMs)
    return { status: 'ok' }
  }

  /**
   * Refuses `peerId` for refuseForMs: forgets its admission, logs and counts the refusal
   * (once while it stays refused), and after `lingerMs` closes its connections and removes
   * it from the routing table.
   */
  refuse(peerId: string, reason: AdmissionGateReason, lingerMs = 0): void {
    if (this.#stopped) return
    const first = this.#refused.add(peerId, reason)
    this.#clearPending(peerId)
    const admitted = this.#admitted.get(peerId)
    if (admitted !== undefined) clearTimeout(admitted.timer)
    this.#admitted.delete(peerId)
    this.#settle(peerId, false)
    if (first) {
      this.#c.logger.warn({ peer: peerId, reason }, 'peer refused admission: disconnected and kept out of the routing table')
      this.#c.onRefused?.(peerId, reason)
    }
    this.#enforce(peerId, lingerMs)
  }

  /** True while `peerId` holds an admission whose token has not expired. */
  isAdmitted(peerId: string): boolean {
    const a = this.#admitted.get(peerId)
    return a !== undefined && a.until > this.#now() && !this.#refused.has(peerId)
  }

  /** True while `peerId` is refused. */
  isRefused(peerId: string): boolean {
    return this.#refused.has(peerId)
  }

  /** True while `peerId` is connected and its deadline runs. */
  isPending(peerId: string): boolean {
    return this.#pending.has(peerId)
  }

  /** Resolves true once `peerId` is admitted (at once if it is), false when it is refused or `signal` aborts first. */
  whenAdmitted(peerId: string, signal: AbortSignal): Promise<boolean> {
    if (this.isAdmitted(peerId)) return Promise.resolve(true)
    if (this.#stopped || this.#refused.has(peerId) || signal.aborted) return Promise.resolve(false)
    return new Promise((resolve) => {
      let set = this.#waiters.get(peerId)
      if (set === undefined) this.#waiters.set(peerId, (set = new Set()))
      const done = (admitted: boolean): void => {
        signal.removeEventListener('abort', onAbort)
        set.delete(done)
        if (set.size === 0 && this.#waiters.get(peerId) === set) this.#waiters.delete(peerId)
        resolve(admitted)
      }
      const onAbort = (): void => done(false)
      set.add(done)
      signal.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** Refuses every admitted peer whose PeerId is now revoked. */
  recheck(): void {
    if (this.#c.revoked === undefined) return
    for (const peerId of [...this.#admitted.keys()]) {
      if (this.#c.revoked(peerId)) this.refuse(peerId, 'revoked')
    }
  }

  /** Clears every timer; waiters resolve false. The gate admits and refuses no one after this. */
  stop(): void {
    this.#stopped = true
    clearInterval(this.#recheck)
    for (const p of this.#pending.values()) clearTimeout(p.timer)
    for (const a of this.#admitted.values()) clearTimeout(a.timer)
    this.#pending.clear()
    this.#admitted.clear()
    for (const peerId of [...this.#waiters.keys()]) this.#settle(peerId, false)
  }

  #admit(peerId: string, until: number): void {
    this.#clearPending(peerId)
    const previous = this.#admitted.get(peerId)
    if (previous !== undefined) clearTimeout(previous.timer)
    this.#admitted.delete(peerId)
    const timer = setTimeout(() => this.#expired(peerId), Math.min(Math.max(0, until - this.#now()), 2 ** 31 - 1))
    timer.unref()
    this.#admitted.set(peerId, { until, timer })
    this.#evictAdmitted()
    this.#settle(peerId, true)
  }

  /** Keeps at most maxAdmittedPeers, forgetting the oldest admissions of peers no longer connected. */
  #evictAdmitted(): void {
    if (this.#admitted.size <= this.#maxAdmitted) return
    for (const [peerId, a] of this.#admitted) {
      if (this.#admitted.size <= this.#maxAdmitted) return
      if (this.#network?.isConnected(peerId) === true) continue
      clearTimeout(a.timer)
      this.#admitted.delete(peerId)
    }
  }

  #deadline(peerId: string): void {
    const pending = this.#pending.get(peerId)
    this.#pending.delete(peerId)
    if (this.#stopped || this.isAdmitted(peerId)) return
    if (this.#network?.isConnected(peerId) === false) {
      // Gone before its deadline: nothing to close, but it must not linger in the routing table.
      void this.#network.forget(peerId).catch(() => {})
      return
    }
    this.refuse(peerId, pending?.reason ?? 'not-presented')
  }

  /** Its token expired and no newer one arrived: a peer still connected is refused. */
  #expired(peerId: string): void {
    const a = this.#admitted.get(peerId)
    if (a === undefined || this.#stopped) return
    if (a.until > this.#now()) {
      this.#admit(peerId, a.until)
      return
    }
    this.#admitted.delete(peerId)
    if (this.#network?.isConnected(peerId) === true) this.refuse(peerId, 'expired')
  }

  #enforce(peerId: string, lingerMs: number): void {
    const network = this.#network
    if (network === undefined) return
    const act = (): void => {
      void network.disconnect(peerId).catch((err: unknown) => this.#c.logger.debug({ peer: peerId, err: (err as Error).message }, 'disconnecting a refused peer failed'))
      void network.forget(peerId).catch((err: unknown) => this.#c.logger.debug({ peer: peerId, err: (err as Error).message }, 'removing a refused peer from the routing table failed'))
    }
    if (lingerMs <= 0) act()
    else setTimeout(act, lingerMs).unref()
  }

  #clearPending(peerId: string): void {
    const pending = this.#pending.get(peerId)
    if (pending !== undefined) clearTimeout(pending.timer)
    this.#pending.delete(peerId)
  }

  #settle(peerId: string, admitted: boolean): void {
    for (const done of [...(this.#waiters.get(peerId) ?? [])]) done(admitted)
  }
}

/** The bounded reason for a verification failure. */
function reasonOf(err: unknown): AdmissionGateReason {
  if (err instanceof AdmissionDeniedError) return err.reason
  if (err instanceof AdmissionKeysUnavailableError) return 'unavailable'
  return 'error'
}

function nonNegative(value: number, name: string): number {
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`${name} must be a non-negative number of milliseconds`)
  return value
}
