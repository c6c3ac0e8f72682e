/**
 * Conventions shared by the agent's and the seed's metrics. Every label value must come from
 * a bounded set, so that no client, peer or upstream can grow a series per request: the label
 * helpers map anything outside the set to `other`.
 */

/**
 * Latency buckets for a registry hop: from a cache hit served in milliseconds to a large
 * layer pulled through for a minute.
 */
export const REQUEST_DURATION_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

/** The label for a value outside its allowed set. */
export const OTHER_LABEL = 'other'

/** Returns `value` when `allowed` holds it, else `other`. */
export function boundedLabel(value: string | undefined, allowed: ReadonlySet<string>): string {
  return value !== undefined && allowed.has(value) ? value : OTHER_LABEL
}

const METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'])

/** An HTTP method as a label: the common ones as they are, anything else `other`. */
export function methodLabel(method: string | undefined): string {
  return boundedLabel(method, METHODS)
}

/** An HTTP status as a label: a three-digit code, else `other`. */
export function statusLabel(status: number | string): string {
  const s = String(status)
  return /^[1-5]\d\d$/.test(s) ? s : OTHER_LABEL
}

/**
 * The `code` of an outgoing request (an HTTP status, `error` for a connection failure,
 * `timeout` when no answer came within the deadline), bounded.
 */
export function requestCodeLabel(code: string): string {
  return code === 'error' || code === 'timeout' ? code : statusLabel(code)
}

/** True when a request's `code` says the remote answered at all (any HTTP status). */
export function remoteAnswered(code: string): boolean {
  return code !== 'error' && code !== 'timeout'
}
