import type { Readable } from 'node:stream'
import type { Logger } from 'pino'
import { Agent, type Dispatcher } from 'undici'
import { parseDigest } from '../../protocol/digest.js'
import {
  ManifestInvalidError,
  PollenError,
  RangeNotSatisfiableError,
  UpstreamRateLimitedError,
  UpstreamUnauthorizedError,
  UpstreamUnavailableError,
} from '../../protocol/errors.js'
import { MANIFEST_MEDIA_TYPES, MAX_MANIFEST_BYTES, baseMediaType } from '../../protocol/media-types.js'
import { parseReference, parseRepository } from '../../protocol/reference.js'
import { UpstreamAuth } from './auth.js'
import { BlobBodyStream } from './body-stream.js'
import { pickChallenge } from './challenge.js'
import {
  DEFAULT_BODY_IDLE_TIMEOUT_MS,
  DEFAULT_MAX_RETRIES,
  DEFAULT_MAX_RETRY_AFTER_MS,
  DEFAULT_REALM_HOSTS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  MAX_REDIRECTS,
} from './constants.js'
import type { UpstreamCredentials } from './credentials.js'
import { UpstreamProtocolError } from './errors.js'
import { checkManifestDigest, partialSize } from './response-checks.js'
import { responseError, type Subject } from './response-errors.js'
import { RetryableError, abortableSleep, backoffDelay } from './retry.js'
import { TokenCache } from './token-cache.js'
import { discard, headerValue, parseLength, readBounded, send, type Response } from './transport.js'

export interface UpstreamInit {
  /** Canonical registry host, e.g. `docker.io` or `127.0.0.1:5055`. */
  ns: string
  /** Base URL of the registry API, e.g. `https://registry-1.docker.io`. */
  url: string
  credentials?: UpstreamCredentials
  /** Hosts (host[:port]) besides the upstream's own that may serve as token realm. Default: DEFAULT_REALM_HOSTS[ns] or none. */
  realmHosts?: string[]
  /** Per attempt deadline for response headers (and whole manifest bodies). */
  requestTimeoutMs?: number
  /** A blob body that sends nothing for this long is failed. */
  bodyIdleTimeoutMs?: number
  /** Retries for 5xx, 429 and connection failures. */
  maxRetries?: number
  /** Longest `Retry-After` waited out; a longer one fails with UpstreamRateLimitedError at once. */
  maxRetryAfterMs?: number
  /** What errors call this remote: `upstream <ns>` (default), or `seed <ns>` for an agent's client of its seed. */
  role?: 'upstream' | 'seed'
}

export interface UpstreamMetrics {
  /** Every HTTP response (`code` is its status), every connection failure (`code` = 'error') and every attempt that got no answer within its deadline (`code` = 'timeout'). */
  request(registry: string, code: string): void
  /** Body bytes received (blobs and manifests). */
  bytes(registry: string, n: number): void
}

export interface UpstreamComponents {
  logger: Logger
  /** Default: an undici Agent owned by the instance, closed by close(). */
  dispatcher?: Dispatcher
  metrics?: UpstreamMetrics
  /** Waits between retries; rejects with the signal's reason when it aborts. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>
  /** A bearer token sent with every request that has no other authorization (the agent's admission token to its seed). */
  bearer?: () => string | undefined
}

export interface UpstreamManifest {
  /** The exact bytes (empty for HEAD). */
  bytes: Buffer
  /** Content-Type without parameters ('' when absent). */
  mediaType: string
  /** The upstream's Docker-Content-Digest when valid (checked against the bytes), else the digest asked for. */
  digest?: string
  size: number
}

const MANIFEST_ACCEPT = MANIFEST_MEDIA_TYPES.join(', ')

export interface ManifestRequestOptions {
  method?: 'GET' | 'HEAD'
  signal?: AbortSignal
  /** The `Accept` header to send; default: the four manifest and index types. */
  accept?: string
  /** Adds `?ns=` (the agent asking its seed for another registry's content). */
  ns?: string
}

function nsQuery(ns: string | undefined): string {
  return ns === undefined ? '' : `?ns=${encodeURIComponent(ns)}`
}

/**
 * The seed's client for one upstream registry's pull API. Authenticates (Basic, or Bearer
 * tokens from a realm it trusts), retries 5xx, 429 and connection failures a bounded number
 * of times, follows blob redirects without carrying credentials off the upstream's origin,
 * and treats every response as hostile (bounded bodies, checked lengths and digests).
 */
export class UpstreamRegistry {
  readonly ns: string
  /** `upstream <ns>` or `seed <ns>`, for messages. */
  readonly #who: string
  readonly #url: URL
  readonly #logger: Logger
  readonly #metrics: UpstreamMetrics | undefined
  readonly #dispatcher: Dispatcher
  readonly #ownsDispatcher: boolean
  readonly #sleep: (ms: number, signal?: AbortSignal) => Promise<void>
  readonly #bearer: (() => string | undefined) | undefined
  readonly #auth: UpstreamAuth
  readonly #requestTimeoutMs: number
  readonly #bodyIdleTimeoutMs: number
  readonly #maxRetries: number
  readonly #maxRetryAfterMs: number
  /** Aborted by close(): ends every request and body this instance has open. */
  readonly #lifetime = new AbortController()
  #closing: Promise<void> | undefined

  /** Throws TypeError for a URL that is not http(s) or carries user info. */
  constructor(init: UpstreamInit, components: UpstreamComponents) {
    const url = new URL(init.url)
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new TypeError(`upstream ${init.ns}: URL must be http or https`)
    if (url.username !== '' || url.password !== '') throw new TypeError(`upstream ${init.ns}: URL must not carry credentials`)
    this.ns = init.ns
    this.#who = `${init.role ?? 'upstream'} ${init.ns}`
    this.#url = url
    this.#logger = components.logger
    this.#metrics = components.metrics
    this.#ownsDispatcher = components.dispatcher === undefined
    this.#dispatcher = components.dispatcher ?? new Agent()
    this.#sleep = components.sleep ?? abortableSleep
    this.#bearer = components.bearer
    this.#requestTimeoutMs = init.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS
    this.#bodyIdleTimeoutMs = init.bodyIdleTimeoutMs ?? DEFAULT_BODY_IDLE_TIMEOUT_MS
    this.#maxRetries = init.maxRetries ?? DEFAULT_MAX_RETRIES
    this.#maxRetryAfterMs = init.maxRetryAfterMs ?? DEFAULT_MAX_RETRY_AFTER_MS
    this.#auth = new UpstreamAuth(
      {
        ns: init.ns,
        url,
        credentials: init.credentials,
        realmHosts: init.realmHosts ?? DEFAULT_REALM_HOSTS[init.ns] ?? [],
        requestTimeoutMs: this.#requestTimeoutMs,
      },
      { dispatcher: this.#dispatcher, logger: this.#logger, tokens: new TokenCache(), onResponse: (code) => this.#count(code) },
    )
  }

  /**
   * GET (or HEAD) a manifest by tag or digest, accepting the OCI and Docker manifest and index types.
   * Throws NameInvalidError / ReferenceInvalidError / DigestInvalidError for bad arguments,
   * ManifestUnknownError (404), ManifestInvalidError (larger than 4 MiB), DigestMismatchError
   * (bytes differ from the digest asked for or the upstream's Docker-Content-Digest), and the
   * upstream errors: UpstreamUnauthorizedError, ForeignRealmError, UpstreamDeniedError,
   * UpstreamRateLimitedError, UpstreamUnavailableError, UpstreamRejectedError, UpstreamProtocolError.
   */
  async getManifest(repo: string, reference: string, opts: ManifestRequestOptions = {}): Promise<UpstreamManifest> {
    const method = opts.method ?? 'GET'
    const name = parseRepository(this.ns, repo).name
    const ref = parseReference(reference)
    const subject = this.#subject('manifest', name, reference)
    return this.#withRetries(opts.signal, async (signal) => {
      const res = await this.#exchange(method, `/v2/${name}/manifests/${reference}${nsQuery(opts.ns)}`, { accept: opts.accept ?? MANIFEST_ACCEPT }, subject, signal)
      if (res.status !== 200) throw await responseError(res, subject)
      const length = parseLength(headerValue(res.headers, 'content-length'))
      const tooLarge = (): ManifestInvalidError => new ManifestInvalidError(`${this.#who} sent a manifest larger than ${MAX_MANIFEST_BYTES} bytes`)
      if (length !== undefined && length > MAX_MANIFEST_BYTES) {
        res.body.destroy()
        throw tooLarge()
      }
      let bytes: Buffer = Buffer.alloc(0)
      if (method === 'HEAD') {
        await discard(res.body)
        if (length === undefined) throw new UpstreamProtocolError(`${this.#who} answered a manifest HEAD without Content-Length`)
      } else {
        const read = await readBounded(res.body, MAX_MANIFEST_BYTES, (n) => this.#metrics?.bytes(this.ns, n))
        if (read === undefined) throw tooLarge()
        bytes = read
      }
      return {
        bytes,
        mediaType: baseMediaType(headerValue(res.headers, 'content-type') ?? ''),
        digest: checkManifestDigest(headerValue(res.headers, 'docker-content-digest'), ref, method === 'GET' ? bytes : undefined),
        size: method === 'HEAD' ? (length ?? 0) : bytes.byteLength,
      }
    })
  }

  /**
   * GET a blob from `offset` (default 0) to its end. Returns its total size and a stream of
   * bytes [offset, size), unverified. Throws BlobUnknownError (404), RangeNotSatisfiableError,
   * UpstreamProtocolError (no length, a Content-Range that does not start at offset), and the
   * upstream errors listed on getManifest. The stream fails with UpstreamUnavailableError when
   * the body stalls for bodyIdleTimeoutMs or breaks, and with the signal's reason on abort.
   */
  async openBlob(repo: string, digest: string, opts: { offset?: number; signal?: AbortSignal; ns?: string } = {}): Promise<{ size: number; stream: Readable }> {
    const offset = opts.offset ?? 0
    const range = `bytes=${offset}-`
    if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeNotSatisfiableError(range, 0)
    const name = parseRepository(this.ns, repo).name
    const d = parseDigest(digest)
    const subject = this.#subject('blob', name, d.value)
    return this.#withRetries(opts.signal, async (signal, outer) => {
      const res = await this.#exchange('GET', `/v2/${name}/blobs/${d.value}${nsQuery(opts.ns)}`, offset > 0 ? { range } : {}, subject, signal)
      let size: number | undefined
      if (res.status === 200) {
        size = parseLength(headerValue(res.headers, 'content-length'))
        if (size !== undefined && offset > size) {
          await discard(res.body)
          throw new RangeNotSatisfiableError(range, size)
        }
      } else if (res.status === 206) {
        size = partialSize(res, offset, this.#who)
      } else if (res.status === 416) {
        await discard(res.body)
        const total = /^bytes \*\/(\d{1,16})$/.exec(headerValue(res.headers, 'content-range') ?? '')?.[1]
        throw new RangeNotSatisfiableError(range, total === undefined ? 0 : Number(total))
      } else {
        throw await responseError(res, subject)
      }
      if (size === undefined) {
        await discard(res.body)
        throw new UpstreamProtocolError(`${this.#who} answered blob ${d.value} with status ${res.status} but no usable length`)
      }
      const stream = new BlobBodyStream(res.body, {
        who: this.#who,
        skip: res.status === 200 ? offset : 0,
        length: size - offset,
        idleTimeoutMs: this.#bodyIdleTimeoutMs,
        signal: outer,
        onBytes: (n) => this.#metrics?.bytes(this.ns, n),
      })
      return { size, stream }
    })
  }

  /** HEAD a blob. Returns its size. Throws like openBlob. */
  async statBlob(repo: string, digest: string, opts: { signal?: AbortSignal; ns?: string } = {}): Promise<{ size: number }> {
    const name = parseRepository(this.ns, repo).name
    const d = parseDigest(digest)
    const subject = this.#subject('blob', name, d.value)
    return this.#withRetries(opts.signal, async (signal) => {
      const res = await this.#exchange('HEAD', `/v2/${name}/blobs/${d.value}${nsQuery(opts.ns)}`, {}, subject, signal)
      if (res.status !== 200) throw await responseError(res, subject)
      await discard(res.body)
      const size = parseLength(headerValue(res.headers, 'content-length'))
      if (size === undefined) throw new UpstreamProtocolError(`${this.#who} answered a blob HEAD without Content-Length`)
      return { size }
    })
  }

  /**
   * Fails every request and blob stream of this instance with UpstreamUnavailableError, and
   * closes the dispatcher when it owns it (an injected one is left open). Later calls fail the same way.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#lifetime.abort(new UpstreamUnavailableError(`${this.#who} client is closed`))
      if (this.#ownsDispatcher) await this.#dispatcher.close()
    })()
    return this.#closing
  }

  /**
   * Runs `attempt` with a fresh per-attempt deadline until it succeeds, throws a final error, or
   * maxRetries retries are spent. Waits Retry-After (429) or an exponential backoff between
   * attempts. Rejects with the caller's abort reason as soon as `callerSignal` aborts (or
   * close() is called). `attempt` gets the attempt's signal (deadline included) and the outer
   * one (caller and close only), which outlives the attempt for a streamed body.
   */
  async #withRetries<T>(callerSignal: AbortSignal | undefined, attempt: (signal: AbortSignal, outer: AbortSignal) => Promise<T>): Promise<T> {
    const outer = callerSignal === undefined ? this.#lifetime.signal : AbortSignal.any([callerSignal, this.#lifetime.signal])
    for (let retry = 0; ; retry++) {
      outer.throwIfAborted()
      const deadline = new AbortController()
      const timer = setTimeout(() => deadline.abort(new UpstreamUnavailableError(`${this.#who} did not answer within ${this.#requestTimeoutMs} ms`)), this.#requestTimeoutMs)
      const signal = AbortSignal.any([outer, deadline.signal])
      let failure: RetryableError
      try {
        return await attempt(signal, outer)
      } catch (err) {
        if (outer.aborted) throw outer.reason
        failure = this.#classify(err, deadline.signal)
      } finally {
        clearTimeout(timer)
      }
      const waitMs = failure.retryAfterMs ?? backoffDelay(retry)
      if (waitMs > this.#maxRetryAfterMs && failure.retryAfterMs !== undefined) {
        throw new UpstreamRateLimitedError(`${this.#who} asks to wait ${Math.ceil(waitMs / 1000)} s, longer than the ${this.#maxRetryAfterMs / 1000} s this seed waits`)
      }
      if (retry >= this.#maxRetries) throw failure.final
      this.#logger.debug({ retry: retry + 1, waitMs, err: failure.final.message }, 'retrying upstream request')
      await this.#sleep(waitMs, outer)
    }
  }

  /** Returns the RetryableError for a failed attempt, or throws the error that ends the request. */
  #classify(err: unknown, deadline: AbortSignal): RetryableError {
    if (err instanceof RetryableError) return err
    if (deadline.aborted && err === deadline.reason) {
      this.#count('timeout')
      return new RetryableError(err as PollenError)
    }
    if (err instanceof PollenError) throw err
    this.#count('error')
    const code = (err as { code?: unknown } | null)?.code
    const what = typeof code === 'string' && /^[A-Z_]{1,40}$/.test(code) ? `: ${code}` : ''
    return new RetryableError(new UpstreamUnavailableError(`${this.#who} is unreachable${what}`, { cause: err }))
  }

  /**
   * Sends one request (following redirects) with what this upstream's authentication needs:
   * the cached authorization first, then one answer to a 401 challenge from the upstream itself.
   * Returns the final response, which may be any status. Throws UpstreamUnauthorizedError when
   * the answered request is refused again.
   */
  async #exchange(method: 'GET' | 'HEAD', path: string, headers: Record<string, string>, s: Subject, signal: AbortSignal): Promise<Response> {
    const url = new URL(`${this.#url.pathname.replace(/\/+$/, '')}${path}`, this.#url.origin)
    const scope = `repository:${s.repo}:pull`
    let authorization = this.#auth.initial(scope) ?? this.#bearerHeader()
    for (let answered = false; ; answered = true) {
      const res = await send(url, {
        dispatcher: this.#dispatcher,
        method,
        headers,
        authorization,
        authOrigin: this.#url.origin,
        signal,
        maxRedirects: MAX_REDIRECTS,
        onResponse: (status) => this.#count(String(status)),
      })
      if (res.status !== 401 || res.url.origin !== this.#url.origin) return res
      if (this.#bearer !== undefined) throw await this.#admissionRefused(res, s)
      const challenge = res.headers['www-authenticate']
      await discard(res.body)
      if (answered) {
        const reason = pickChallenge(challenge)?.params.get('error')
        const why = reason !== undefined && /^[a-z_]{1,40}$/.test(reason) ? ` (${reason})` : ''
        const as = this.#auth.hasCredentials ? 'the configured credentials' : 'anonymous access'
        throw new UpstreamUnauthorizedError(`${this.#who} refused ${s.repo} with ${as}${why}`)
      }
      authorization = await this.#auth.answer(challenge, scope, authorization, signal)
    }
  }

  /**
   * A seed's 401 to the agent: its admission token is missing or refused. There is no
   * challenge to answer (enrollment is the token manager's job); the seed's reason is kept.
   */
  async #admissionRefused(res: Response, s: Subject): Promise<UpstreamUnauthorizedError> {
    const body = await readBounded(res.body, 4096).catch(() => undefined)
    let message = ''
    try {
      const first = (JSON.parse(body?.toString() ?? '') as { errors?: Array<{ message?: unknown }> }).errors?.[0]?.message
      if (typeof first === 'string') message = `: ${this.#redact(first).replace(/[^\x20-\x7e]/g, '').slice(0, 200)}`
    } catch {
      /* not OCI error JSON */
    }
    const held = this.#bearer?.() === undefined ? 'no admission token (is this agent enrolled?)' : 'its admission token'
    return new UpstreamUnauthorizedError(`${this.#who} refused ${s.repo} with ${held}${message}`)
  }

  #bearerHeader(): string | undefined {
    const token = this.#bearer?.()
    return token === undefined ? undefined : `Bearer ${token}`
  }

  #subject(kind: Subject['kind'], repo: string, ref: string): Subject {
    return { who: this.#who, kind, repo, ref, redact: (text) => this.#redact(text) }
  }

  /** `text` without this client's credentials, cached tokens and bearer (the agent's admission token). */
  #redact(text: string): string {
    const bearer = this.#bearer?.()
    const out = this.#auth.redact(text)
    return bearer === undefined || bearer.length < 4 ? out : out.split(bearer).join('***')
  }

  #count(code: string): void {
    this.#metrics?.request(this.ns, code)
  }
}
