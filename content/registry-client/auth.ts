import type { Logger } from 'pino'
import { request, type Dispatcher } from 'undici'
import {
  ForeignRealmError,
  UpstreamDeniedError,
  UpstreamRateLimitedError,
  UpstreamUnauthorizedError,
  UpstreamUnavailableError,
} from '../../protocol/errors.js'
import { pickChallenge } from './challenge.js'
import { DEFAULT_TOKEN_LIFETIME_MS, MAX_TOKEN_LIFETIME_MS, TOKEN_BODY_LIMIT_BYTES } from './constants.js'
import type { UpstreamCredentials } from './credentials.js'
import { InsecureRealmError, UpstreamProtocolError } from './errors.js'
import { RetryableError, parseRetryAfter } from './retry.js'
import { tokenKey, type IssuedToken, type TokenCache } from './token-cache.js'
import { discard, headerValue, readBounded } from './transport.js'

export interface UpstreamAuthInit {
  ns: string
  /** The upstream's base URL. */
  url: URL
  credentials?: UpstreamCredentials
  /** Hosts (host[:port]) besides the upstream's own that may act as its token realm. */
  realmHosts: readonly string[]
  /** Deadline of one token request. */
  requestTimeoutMs: number
}

export interface UpstreamAuthComponents {
  dispatcher: Dispatcher
  logger: Logger
  tokens: TokenCache
  /** Called with the status of every token endpoint response, or 'error'. */
  onResponse(code: string): void
}

/** The `Authorization` value for basic credentials. */
export function basicAuthorization(c: UpstreamCredentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`, 'utf8').toString('base64')}`
}

/**
 * Returns the token realm URL when it may be contacted for upstream `upstream`: its host is the
 * upstream's own host or one of `realmHosts`, and it is https when the upstream is.
 * Throws ForeignRealmError, InsecureRealmError, or UpstreamUnauthorizedError for a realm that
 * is not an http(s) URL or carries user info.
 */
export function checkRealm(realm: string, upstream: URL, ns: string, realmHosts: readonly string[]): URL {
  let url: URL
  try {
    url = new URL(realm)
  } catch {
    throw new UpstreamUnauthorizedError(`upstream ${ns} named a token realm that is not a URL`)
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new UpstreamUnauthorizedError(`upstream ${ns} named a non-http token realm`)
  if (url.username !== '' || url.password !== '') throw new UpstreamUnauthorizedError(`upstream ${ns} named a token realm with user info`)
  // The upstream's own host name (on any port: a registry and its token service often share a
  // machine), or a listed host; a listed name without a port trusts every port of that name.
  const trusted =
    url.hostname === upstream.hostname ||
    realmHosts.some((h) => {
      const listed = normaliseHost(h, url.protocol)
      return listed !== undefined && (listed === url.host || (!/:\d+$/.test(h) && listed === url.hostname))
    })
  if (!trusted) throw new ForeignRealmError(url.host, ns)
  if (upstream.protocol === 'https:' && url.protocol === 'http:') throw new InsecureRealmError(url.host, ns)
  return url
}

function normaliseHost(host: string, protocol: string): string | undefined {
  try {
    return new URL(`${protocol}//${host}`).host
  } catch {
    return undefined
  }
}

/**
 * Authentication against one upstream: answers its 401 challenges with basic credentials or a
 * bearer token from its (checked) realm, and remembers which scheme it wants so later requests
 * carry a cached token or the credentials from the start.
 */
export class UpstreamAuth {
  readonly #init: UpstreamAuthInit
  readonly #c: UpstreamAuthComponents
  readonly #basic: string | undefined
  #scheme: { kind: 'basic' } | { kind: 'bearer'; service: string } | undefined

  constructor(init: UpstreamAuthInit, components: UpstreamAuthComponents) {
    this.#init = init
    this.#c = components
    this.#basic = init.credentials === undefined ? undefined : basicAuthorization(init.credentials)
  }

  get hasCredentials(): boolean {
    return this.#basic !== undefined
  }

  /** What a first request for `scope` carries: a cached bearer token or basic credentials, or undefined (anonymous). */
  initial(scope: string): string | undefined {
    if (this.#scheme?.kind === 'basic') return this.#basic
    if (this.#scheme?.kind !== 'bearer') return undefined
    const token = this.#c.tokens.get(tokenKey(this.#init.ns, this.#scheme.service, scope))
    return token === undefined ? undefined : `Bearer ${token}`
  }

  /**
   * Answers the upstream's 401 for `scope`; `sent` is the Authorization the refused request carried.
   * Returns the Authorization to retry with. Throws UpstreamUnauthorizedError (no usable
   * challenge, no credentials for Basic, credentials already refused, token endpoint refused),
   * ForeignRealmError / InsecureRealmError (realm not contacted), UpstreamDeniedError, or
   * RetryableError when the token endpoint is down or rate limiting.
   */
  async answer(header: string | string[] | undefined, scope: string, sent: string | undefined, signal: AbortSignal): Promise<string> {
    const { ns } = this.#init
    const challenge = pickChallenge(header)
    if (challenge === undefined) throw new UpstreamUnauthorizedError(`upstream ${ns} answered 401 without a usable challenge`)
    if (challenge.scheme === 'basic') {
      if (this.#basic === undefined) throw new UpstreamUnauthorizedError(`upstream ${ns} requires credentials and none are configured for it`)
      if (sent === this.#basic) throw new UpstreamUnauthorizedError(`upstream ${ns} rejected the configured credentials`)
      this.#scheme = { kind: 'basic' }
      return this.#basic
    }
    const realm = challenge.params.get('realm')
    if (realm === undefined) throw new UpstreamUnauthorizedError(`upstream ${ns} sent a bearer challenge without a realm`)
    let realmUrl: URL
    try {
      realmUrl = checkRealm(realm, this.#init.url, ns, this.#init.realmHosts)
    } catch (err) {
      this.#c.logger.warn({ err: (err as Error).message }, 'refused token realm')
      throw err
    }
    const service = challenge.params.get('service') ?? ''
    const key = tokenKey(ns, service, scope)
    if (sent?.startsWith('Bearer ') === true) this.#c.tokens.invalidate(key, sent.slice('Bearer '.length))
    const token = await this.#c.tokens.obtain(key, () => this.#issue(realmUrl, service, challenge.params.get('scope') ?? scope), signal)
    this.#scheme = { kind: 'bearer', service }
    return `Bearer ${token}`
  }

  /** Replaces every credential and cached token in `text` with `***`. */
  redact(text: string): string {
    const secrets = [...this.#c.tokens.tokens()]
    const c = this.#init.credentials
    if (c !== undefined && this.#basic !== undefined) secrets.push(c.password, this.#basic.slice('Basic '.length))
    let out = text
    for (const s of secrets) if (s.length >= 4) out = out.split(s).join('***')
    return out
  }

  /** Asks the realm for a pull token. Its own deadline; shared by every caller waiting for the same key. */
  async #issue(realm: URL, service: string, scope: string): Promise<IssuedToken> {
    const { ns, requestTimeoutMs } = this.#init
    const url = new URL(realm)
    if (service !== '') url.searchParams.set('service', service)
    url.searchParams.set('scope', scope)
    const headers: Record<string, string> = {}
    if (this.#basic !== undefined) headers.authorization = this.#basic
    let res: Dispatcher.ResponseData
    const signal = AbortSignal.timeout(requestTimeoutMs)
    try {
      res = await request(url, { dispatcher: this.#c.dispatcher, method: 'GET', headers, signal })
    } catch (err) {
      this.#c.onResponse(signal.aborted ? 'timeout' : 'error')
      throw new RetryableError(new UpstreamUnavailableError(`token service of upstream ${ns} is unreachable`, { cause: err }))
    }
    this.#c.onResponse(String(res.statusCode))
    if (res.statusCode !== 200) {
      await discard(res.body)
      throw this.#tokenError(res.statusCode, headerValue(res.headers, 'retry-after'))
    }
    let body: Buffer | undefined
    try {
      body = await readBounded(res.body, TOKEN_BODY_LIMIT_BYTES)
    } catch (err) {
      throw new RetryableError(new UpstreamUnavailableError(`token service of upstream ${ns} failed mid-response`, { cause: err }))
    }
    if (body === undefined) throw new UpstreamProtocolError(`token service of upstream ${ns} sent more than ${TOKEN_BODY_LIMIT_BYTES} bytes`)
    const issued = parseTokenResponse(body)
    if (issued === undefined) throw new UpstreamProtocolError(`token service of upstream ${ns} sent no usable token`)
    this.#c.logger.debug({ service, scope, lifetimeMs: issued.lifetimeMs }, 'obtained upstream token')
    return issued
  }

  #tokenError(status: number, retryAfter: string | undefined): Error {
    const { ns } = this.#init
    if (status === 401) {
      return new UpstreamUnauthorizedError(
        this.#basic === undefined ? `token service of upstream ${ns} refused anonymous access` : `upstream ${ns} rejected the configured credentials`,
      )
    }
    if (status === 403) return new UpstreamDeniedError(`token service of upstream ${ns} denied the requested scope`)
    if (status === 429) return new RetryableError(new UpstreamRateLimitedError(`token service of upstream ${ns} is rate limiting requests`), parseRetryAfter(retryAfter))
    if (status >= 500) return new RetryableError(new UpstreamUnavailableError(`token service of upstream ${ns} answered ${status}`))
    return new UpstreamProtocolError(`token service of upstream ${ns} answered ${status}`)
  }
}

/** The token and its lifetime from a token endpoint's JSON (`token` or `access_token`, `expires_in`), or undefined. */
export function parseTokenResponse(body: Buffer): IssuedToken | undefined {
  let doc: unknown
  try {
    doc = JSON.parse(body.toString('utf8'))
  } catch {
    return undefined
  }
  if (doc === null || typeof doc !== 'object') return undefined
  const d = doc as { token?: unknown; access_token?: unknown; expires_in?: unknown }
  const token = typeof d.token === 'string' && d.token !== '' ? d.token : d.access_token
  if (typeof token !== 'string' || !/^[\x21-\x7e]{1,16384}$/.test(token)) return undefined
  const expiresIn = typeof d.expires_in === 'number' && Number.isFinite(d.expires_in) && d.expires_in > 0 ? d.expires_in * 1000 : DEFAULT_TOKEN_LIFETIME_MS
  return { token, lifetimeMs: Math.min(expiresIn, MAX_TOKEN_LIFETIME_MS) }
}
