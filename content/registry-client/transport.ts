import type { IncomingHttpHeaders } from 'node:http'
import { request, type Dispatcher } from 'undici'
import { DISCARD_LIMIT_BYTES } from './constants.js'
import { UpstreamProtocolError } from './errors.js'

/** The body of an undici response. */
export type ResponseBody = Dispatcher.ResponseData['body']

/** A final (non-redirect) response and the URL that gave it. */
export interface Response {
  status: number
  headers: IncomingHttpHeaders
  body: ResponseBody
  url: URL
}

export interface SendOptions {
  dispatcher: Dispatcher
  method: 'GET' | 'HEAD'
  headers: Record<string, string>
  /** Sent only to `authOrigin`, and never again once a redirect has left it. */
  authorization?: string
  authOrigin: string
  signal: AbortSignal
  maxRedirects: number
  /** Called with the status of every response, redirects included. */
  onResponse(status: number): void
}

const REDIRECTS = new Set([301, 302, 303, 307, 308])

/**
 * Sends one request and follows up to `maxRedirects` redirects, keeping method and headers.
 * Returns the first response that is not a redirect. Throws UpstreamProtocolError for too
 * many redirects or a target that is not http(s), carries user info, or downgrades https
 * to http; rejects with undici's error (or the signal's reason) when a request fails.
 */
export async function send(url: URL, o: SendOptions): Promise<Response> {
  let current = url
  let mayAuthorize = true
  for (let hops = 0; ; hops++) {
    const headers = { ...o.headers }
    if (o.authorization !== undefined && mayAuthorize && current.origin === o.authOrigin) headers.authorization = o.authorization
    const res = await request(current, { dispatcher: o.dispatcher, method: o.method, headers, signal: o.signal })
    o.onResponse(res.statusCode)
    const location = res.headers.location
    if (!REDIRECTS.has(res.statusCode) || location === undefined) {
      return { status: res.statusCode, headers: res.headers, body: res.body, url: current }
    }
    await discard(res.body)
    if (hops >= o.maxRedirects) throw new UpstreamProtocolError(`upstream redirected more than ${o.maxRedirects} times`)
    current = redirectTarget(current, location)
    if (current.origin !== o.authOrigin) mayAuthorize = false
  }
}

/** The URL a `Location` header points to from `from`. Throws UpstreamProtocolError for one that may not be followed. */
export function redirectTarget(from: URL, location: string | string[]): URL {
  if (typeof location !== 'string') throw new UpstreamProtocolError('upstream sent a redirect with several locations')
  let next: URL
  try {
    next = new URL(location, from)
  } catch {
    throw new UpstreamProtocolError('upstream sent a redirect to an invalid URL')
  }
  if (next.protocol !== 'https:' && next.protocol !== 'http:') throw new UpstreamProtocolError(`upstream redirected to a ${next.protocol} URL`)
  if (next.username !== '' || next.password !== '') throw new UpstreamProtocolError('upstream redirected to a URL with user info')
  if (from.protocol === 'https:' && next.protocol === 'http:') throw new UpstreamProtocolError(`upstream redirected from https to http (${next.host})`)
  return next
}

/** Drains a body that is not wanted, so its connection can be reused; past DISCARD_LIMIT_BYTES it is closed. Never rejects. */
export async function discard(body: ResponseBody): Promise<void> {
  try {
    await body.dump({ limit: DISCARD_LIMIT_BYTES })
  } catch {
    // The connection is gone either way.
  }
}

/**
 * Reads a whole body of at most `limit` bytes. Returns undefined, having closed the body,
 * when it is longer. `onBytes` sees every chunk's length. Rejects when the body fails.
 */
export async function readBounded(body: ResponseBody, limit: number, onBytes?: (n: number) => void): Promise<Buffer | undefined> {
  const parts: Buffer[] = []
  let total = 0
  for await (const chunk of body as AsyncIterable<Buffer>) {
    onBytes?.(chunk.byteLength)
    total += chunk.byteLength
    if (total > limit) {
      body.destroy()
      return undefined
    }
    parts.push(chunk)
  }
  return Buffer.concat(parts, total)
}

/** Reads the first `limit` bytes of a body (an error body), then lets go of the rest. Never rejects. */
export async function readPrefix(body: ResponseBody, limit: number): Promise<Buffer> {
  const parts: Buffer[] = []
  let total = 0
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      parts.push(chunk)
      total += chunk.byteLength
      if (total >= limit) break
    }
  } catch {
    // A broken error body still has a status.
  }
  if (!body.destroyed) await discard(body)
  return Buffer.concat(parts).subarray(0, limit)
}

/** A header's single value, or undefined when it is absent or repeated. */
export function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name]
  return typeof v === 'string' ? v : undefined
}

/** A `Content-Length`-style non-negative integer, or undefined. */
export function parseLength(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d{1,16}$/.test(value.trim())) return undefined
  const n = Number(value.trim())
  return Number.isSafeInteger(n) ? n : undefined
}
