import type { Connection, Libp2p, Stream } from '@libp2p/interface'
import type { Logger } from 'pino'
import {
  ADMISSION_PROTOCOL,
  AdmissionFrameReader,
  encodePresentation,
  encodeVerdict,
  type AdmissionFrameKind,
  type AdmissionFrameOf,
  type AdmissionVerdict,
} from '../../protocol/admission-frames.js'
import { PollenError } from '../../protocol/errors.js'
import type { AdmissionGate } from './admission-gate.js'

/** Deadline of one presentation: open the stream, send the token, read the verdict. */
export const PRESENT_TIMEOUT_MS = 5_000
/** Pause before presenting again after a `retry` verdict, and how many times we do. */
export const PRESENT_RETRY_MS = 500
export const PRESENT_RETRIES = 3
const CLOSE_TIMEOUT_MS = 1_000

export interface AdmissionExchangeComponents {
  libp2p: Pick<Libp2p, 'handle' | 'unhandle' | 'addEventListener' | 'removeEventListener' | 'getConnections'>
  logger: Logger
  /** Checks what peers present; absent, peers are not gated (and the protocol is not served). */
  gate?: AdmissionGate
  /** Our admission token, presented on every new connection; absent or undefined, nothing is presented. */
  token?: () => string | undefined
}

export interface AdmissionExchange {
  /** Presents our current token on one open connection to every connected peer (after a refresh). */
  presentToAll(): void
  stop(): Promise<void>
}

/**
 * Runs `/pollen/admission/1.0.0` on a libp2p node: on every new connection it tells the gate
 * (which starts the peer's deadline) and presents our token; it serves the protocol by reading
 * the peer's presentation and answering with the gate's verdict. Registers before the node
 * starts, so no connection escapes it.
 */
export async function startAdmissionExchange(c: AdmissionExchangeComponents): Promise<AdmissionExchange> {
  const log = c.logger.child({ component: 'admission-exchange' })
  const { gate } = c
  const refusedUs = new Set<string>()

  async function serve(stream: Stream, connection: Connection): Promise<void> {
    if (gate === undefined) return
    const peer = connection.remotePeer.toString()
    let verdict: AdmissionVerdict
    try {
      const presented = await readFrame(stream, 'presentation', AbortSignal.timeout(gate.deadlineMs))
      verdict = await gate.present(peer, presented.token)
    } catch (err) {
      if (!(err instanceof PollenError)) {
        // The stream died or the deadline passed; the gate's own deadline decides.
        log.debug({ peer, err: (err as Error).message }, 'admission presentation not received')
        stream.abort(err as Error)
        return
      }
      verdict = { status: 'refused', reason: 'malformed' }
      gate.refuse(peer, 'malformed', PRESENT_RETRY_MS)
    }
    await answer(stream, verdict)
  }

  async function present(connection: Connection): Promise<void> {
    const peer = connection.remotePeer.toString()
    for (let attempt = 0; attempt <= PRESENT_RETRIES; attempt++) {
      const token = c.token?.()
      if (token === undefined || connection.status !== 'open') return
      let verdict: AdmissionVerdict
      try {
        verdict = await exchange(connection, token)
      } catch (err) {
        // Most often: the peer does not gate (it does not speak the protocol), or it hung up.
        log.debug({ peer, err: (err as Error).message }, 'could not present our admission token')
        return
      }
      if (verdict.status === 'ok') {
        refusedUs.delete(peer)
        return
      }
      if (verdict.status === 'refused') {
        if (!refusedUs.has(peer)) log.warn({ peer, reason: verdict.reason }, 'a peer refused our admission token')
        refusedUs.add(peer)
        if (refusedUs.size > 1024) refusedUs.delete(refusedUs.values().next().value as string)
        return
      }
      await new Promise((resolve) => setTimeout(resolve, PRESENT_RETRY_MS).unref())
    }
  }

  const onOpen = (evt: CustomEvent<Connection>): void => {
    const connection = evt.detail
    gate?.connected(connection.remotePeer.toString())
    if (c.token !== undefined) void present(connection)
  }

  if (gate !== undefined) {
    await c.libp2p.handle(ADMISSION_PROTOCOL, (stream, connection) => void serve(stream, connection).catch(() => stream.abort(new Error('admission failed'))), {
      maxInboundStreams: 4,
      runOnLimitedConnection: false,
    })
  }
  c.libp2p.addEventListener('connection:open', onOpen)
  return {
    presentToAll() {
      const firstPerPeer = new Map<string, Connection>()
      for (const conn of c.libp2p.getConnections()) {
        if (conn.status === 'open' && !firstPerPeer.has(conn.remotePeer.toString())) firstPerPeer.set(conn.remotePeer.toString(), conn)
      }
      for (const conn of firstPerPeer.values()) void present(conn)
    },
    async stop() {
      c.libp2p.removeEventListener('connection:open', onOpen)
      if (gate !== undefined) await c.libp2p.unhandle(ADMISSION_PROTOCOL).catch(() => {})
    },
  }
}

/** Presents `token` on a new stream of `connection` and returns the verdict. Throws when the exchange fails. */
async function exchange(connection: Connection, token: string): Promise<AdmissionVerdict> {
  const signal = AbortSignal.timeout(PRESENT_TIMEOUT_MS)
  const stream = await connection.newStream(ADMISSION_PROTOCOL, { signal })
  try {
    stream.send(encodePresentation({ token }))
    const verdict = await readFrame(stream, 'verdict', signal)
    await stream.close({ signal: AbortSignal.timeout(CLOSE_TIMEOUT_MS) }).catch(() => stream.abort(new Error('close timed out')))
    return verdict
  } catch (err) {
    stream.abort(err as Error)
    throw err
  }
}

async function answer(stream: Stream, verdict: AdmissionVerdict): Promise<void> {
  try {
    stream.send(encodeVerdict(verdict))
    await stream.close({ signal: AbortSignal.timeout(CLOSE_TIMEOUT_MS) })
  } catch (err) {
    stream.abort(err as Error)
  }
}

/**
 * Reads one admission frame from the start of `stream`. Throws the codec's errors
 * (PollenError) for bad bytes, and a plain Error when the stream ends or `signal` aborts first.
 */
async function readFrame<K extends AdmissionFrameKind>(stream: Stream, expect: K, signal: AbortSignal): Promise<AdmissionFrameOf[K]> {
  signal.throwIfAborted()
  const reader = new AdmissionFrameReader(expect)
  const onAbort = (): void => stream.abort(signal.reason as Error)
  signal.addEventListener('abort', onAbort, { once: true })
  try {
    for await (const chunk of stream) {
      const frame = reader.push(chunk instanceof Uint8Array ? chunk : chunk.subarray())
      if (frame !== undefined) return frame
    }
    signal.throwIfAborted()
    reader.finish()
    throw new Error('unreachable')
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}
