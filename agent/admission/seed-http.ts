import { request } from 'undici'
import { AdmissionRefusedError, SeedUnavailableError } from './errors.js'

/** The seed URL without a trailing slash. Throws TypeError unless it is an http(s) URL. */
export function seedBase(seedUrl: string): string {
  const url = new URL(seedUrl)
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`seed URL must be http(s): ${url.protocol}`)
  return seedUrl.replace(/\/+$/, '')
}

export interface SeedRequest {
  method: 'GET' | 'POST'
  /** Sent as the JSON body. */
  json?: unknown
  /** Deadline for the whole exchange, answer body included. */
  timeoutMs: number
  /** Aborts the request early (the owner stopping). */
  signal?: AbortSignal
  /** Answers longer than this are refused. */
  maxBytes: number
}

export interface SeedAnswer {
  status: number
  /** The parsed JSON body; undefined when the body is empty or not JSON. */
  body: unknown
  /** `Cache-Control: max-age` in seconds, when the answer has one. */
  maxAgeS?: number
}

/** `max-age=N` of a Cache-Control header, when present and sane. */
export function maxAgeOf(header: string | string[] | undefined): number | undefined {
  const m = /(?:^|[,\s])max-age=(\d{1,9})(?:$|[,\s])/i.exec(Array.isArray(header) ? header.join(',') : (header ?? ''))
  return m === null ? undefined : Number(m[1])
}

/**
 * Sends one request to the seed. Returns its status and JSON body whatever the status.
 * Throws SeedUnavailableError on a connection failure, the deadline, an abort, or an answer
 * longer than `maxBytes`.
 */
export async function seedRequest(url: string, r: SeedRequest): Promise<SeedAnswer> {
  const deadline = AbortSignal.timeout(r.timeoutMs)
  const signal = r.signal === undefined ? deadline : AbortSignal.any([deadline, r.signal])
  try {
    const res = await request(url, {
      method: r.method,
      headers: r.json === undefined ? { accept: 'application/json' } : { accept: 'application/json', 'content-type': 'application/json' },
      body: r.json === undefined ? undefined : JSON.stringify(r.json),
      signal,
    })
    const parts: Buffer[] = []
    let size = 0
    for await (const chunk of res.body) {
      size += (chunk as Buffer).byteLength
      if (size > r.maxBytes) {
        res.body.destroy()
        throw new SeedUnavailableError(`the seed's answer from ${new URL(url).pathname} is longer than ${r.maxBytes} bytes`)
      }
      parts.push(chunk as Buffer)
    }
    const maxAgeS = maxAgeOf(res.headers['cache-control'])
    return { status: res.statusCode, body: parseJson(Buffer.concat(parts).toString('utf8')), ...(maxAgeS === undefined ? {} : { maxAgeS }) }
  } catch (err) {
    if (err instanceof SeedUnavailableError) throw err
    const why = deadline.aborted ? `no answer within ${r.timeoutMs} ms` : r.signal?.aborted === true ? 'aborted' : describe(err)
    throw new SeedUnavailableError(`seed request ${r.method} ${new URL(url).pathname} failed: ${why}`, { cause: err })
  }
}

/**
 * The error for a non-200 answer: SeedUnavailableError for 5xx, 408 and 429 (retry soon),
 * AdmissionRefusedError for other statuses. The seed's message is clipped, made printable,
 * and every occurrence of `secrets` is replaced, so the error is safe to log.
 */
export function seedFailure(answer: SeedAnswer, secrets: readonly string[] = []): SeedUnavailableError | AdmissionRefusedError {
  const { status } = answer
  let message = seedMessage(answer.body)
  for (const secret of secrets) if (secret !== '') message = message.split(secret).join('[redacted]')
  const text = `seed answered ${status}${message === '' ? '' : `: ${message}`}`
  if (status >= 500 || status === 408 || status === 429) return new SeedUnavailableError(text)
  return new AdmissionRefusedError(status, /refused \(([a-z-]+)\)/.exec(message)?.[1], text)
}

/** The first OCI error's message, clipped and printable; '' when there is none. */
function seedMessage(body: unknown): string {
  const first = (body as { errors?: Array<{ message?: unknown }> } | undefined)?.errors?.[0]
  const raw = typeof first?.message === 'string' ? first.message : ''
  const clipped = raw.length > 300 ? `${raw.slice(0, 300)}…` : raw
  return clipped.replace(/[^\x20-\x7e…]/g, '?')
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown
  } catch {
    return undefined
  }
}

function describe(err: unknown): string {
  const code = (err as { code?: unknown }).code
  const message = err instanceof Error ? err.message : String(err)
  return typeof code === 'string' ? `${code} ${message}` : message
}
