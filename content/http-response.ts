import type { IncomingMessage, ServerResponse } from 'node:http'
import { pipeline } from 'node:stream/promises'
import { toOciError } from '../protocol/oci-errors.js'
import { contentRange, parseRange } from '../protocol/range.js'
import { MethodNotAllowedError, RangeNotSatisfiableError } from '../protocol/errors.js'
import type { BlobHandle } from './caching-source.js'
import { sendFileRange, type SendBudget } from './file-response.js'

/**
 * The HTTP edge that agent and seed share: OCI error bodies and blob responses with Range.
 * Domain errors are translated to OCI codes here, once.
 */

/** Writes the OCI error for `err`, or, when headers are already out, cuts the connection so the client sees a failed transfer. */
export function sendError(res: ServerResponse, err: unknown, extraHeaders: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy(err instanceof Error ? err : undefined)
    return
  }
  const { status, body } = toOciError(err)
  const json = JSON.stringify(body)
  const headers: Record<string, string | number> = { ...extraHeaders, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(json) }
  if (err instanceof RangeNotSatisfiableError) headers['Content-Range'] = `bytes */${err.size}`
  if (err instanceof MethodNotAllowedError) headers.Allow = err.allow.join(', ')
  res.writeHead(status, headers)
  res.end(json)
}

export interface BlobResponseResult {
  status: number
  /** Body bytes delivered (0 for HEAD; the call rejects when the body was cut short). */
  bytes: number
}

/**
 * Answers a blob GET/HEAD from `handle`: 200 with the whole blob, 206 with `Content-Range`
 * for a satisfiable `Range: bytes=…`, 416 otherwise. Headers: Content-Type,
 * Content-Length, Docker-Content-Digest, Accept-Ranges. A client that disconnects only
 * stops its own read. Rejects when the body could not be delivered (after cutting the connection).
 */
export async function sendBlob(req: IncomingMessage, res: ServerResponse, handle: BlobHandle, budget: SendBudget): Promise<BlobResponseResult> {
  const range = parseRange(headerValue(req.headers.range), handle.size)
  const start = range?.start ?? 0
  const end = range?.end ?? handle.size - 1
  const length = handle.size === 0 ? 0 : end - start + 1
  const headers: Record<string, string | number> = {
    'Content-Type': 'application/octet-stream',
    'Content-Length': length,
    'Docker-Content-Digest': handle.digest,
    'Accept-Ranges': 'bytes',
    ETag: `"${handle.digest}"`,
  }
  const status = range === undefined ? 200 : 206
  if (range !== undefined) headers['Content-Range'] = contentRange(range, handle.size)
  if (req.method === 'HEAD' || length === 0) {
    res.writeHead(status, headers)
    res.end()
    return { status, bytes: 0 }
  }
  if (handle.openFile !== undefined) {
    // A committed blob: positional reads into reused buffers, no stream machinery.
    const file = await handle.openFile()
    res.writeHead(status, headers)
    await sendFileRange(res, file, start, end, budget)
    return { status, bytes: length }
  }
  const body = await handle.read(start, end)
  res.writeHead(status, headers)
  try {
    await pipeline(body, res)
  } catch (err) {
    body.destroy()
    if (!res.destroyed) res.destroy()
    throw err
  }
  return { status, bytes: length }
}

/** The first value of a header that may repeat. */
export function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}
