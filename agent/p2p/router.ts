import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { parseDigest } from '../../protocol/digest.js'
import type { PollenLibp2p } from '../../content/p2p/node.js'
import type { Logger } from 'pino'

/** Multicodec of the raw binary codec: the CID names bytes, not an IPLD node. */
export const RAW_CODEC = 0x55
const MULTIHASH_CODE = { sha256: 0x12, sha512: 0x13 } as const

/** Deadline for a provide when the caller passes no signal. */
export const DEFAULT_PROVIDE_TIMEOUT_MS = 30_000
/** Deadline for a provider lookup when the caller passes no signal. */
export const DEFAULT_FIND_TIMEOUT_MS = 10_000
/** Providers returned by one lookup when the caller sets no limit. */
export const DEFAULT_FIND_LIMIT = 20

/**
 * The DHT key of a digest: CIDv1, raw codec, whose multihash carries the
 * digest's own bytes (sha2-256 → 0x12, sha2-512 → 0x13); nothing is re-hashed.
 * Throws DigestInvalidError or UnsupportedDigestAlgorithmError (protocol/errors)
 * for anything that is not a canonical sha256/sha512 digest.
 */
export function digestToCid(digest: string): CID {
  const d = parseDigest(digest)
  return CID.create(1, RAW_CODEC, Digest.create(MULTIHASH_CODE[d.algorithm], Uint8Array.from(Buffer.from(d.hex, 'hex'))))
}

export interface ProviderInfo {
  peerId: string
  multiaddrs: string[]
}

export interface ProvideResult {
  /** Peers that acknowledged our provider record. */
  peers: number
  /** False when the deadline or the caller's signal cut the provide short. */
  complete: boolean
}

export interface FindProvidersOptions {
  signal?: AbortSignal
  /** Stop after this many providers. Default: DEFAULT_FIND_LIMIT. */
  limit?: number
}

export interface DhtRouterComponents {
  libp2p: PollenLibp2p
  logger: Logger
  /** Called once per lookup, when it ends (exhausted, limit reached, deadline, or the caller stopped iterating). */
  onLookup?(seconds: number, found: number): void
  /** False for a provider never to be named (e.g. a peer the admission gate refused). Default: every provider. */
  accept?(peerId: string): boolean
}

/**
 * Content routing by digest over the node's kad-dht. Only digests pass through
 * here: tags are never advertised.
 */
export class DhtRouter {
  private readonly libp2p: PollenLibp2p
  private readonly log: Logger
  private readonly onLookup: ((seconds: number, found: number) => void) | undefined
  private readonly accept: (peerId: string) => boolean
  /** Provides in flight, so that withdraw can cut them short. */
  private readonly providing = new Map<string, Set<AbortController>>()

  constructor(components: DhtRouterComponents) {
    this.libp2p = components.libp2p
    this.log = components.logger.child({ component: 'dht-router' })
    this.onLookup = components.onLookup
    this.accept = components.accept ?? (() => true)
  }

  /**
   * Announces that we hold (or are filling) `digest`. The record is stored
   * locally at once, so kad-dht re-provides it until `withdraw`, even when the
   * network part is cut short. Resolves when the record reached the closest
   * peers, or when `signal` (default: DEFAULT_PROVIDE_TIMEOUT_MS) or a
   * `withdraw` aborted it; never rejects on abort. Throws for a bad digest.
   */
  async provide(digest: string, signal?: AbortSignal): Promise<ProvideResult> {
    const cid = digestToCid(digest)
    const controller = new AbortController()
    const set = this.providing.get(digest) ?? new Set()
    set.add(controller)
    this.providing.set(digest, set)
    const deadline = AbortSignal.any([controller.signal, signal ?? AbortSignal.timeout(DEFAULT_PROVIDE_TIMEOUT_MS)])
    const started = performance.now()
    let peers = 0
    try {
      for await (const event of this.libp2p.services.dht.provide(cid, { signal: deadline })) {
        if (event.name === 'PEER_RESPONSE' && event.messageName === 'ADD_PROVIDER') peers++
      }
      this.log.debug({ digest, peers, ms: Math.round(performance.now() - started) }, 'provided')
      return { peers, complete: true }
    } catch (err) {
      if (!deadline.aborted) throw err
      this.log.debug({ digest, peers }, 'provide cut short')
      return { peers, complete: false }
    } finally {
      set.delete(controller)
      if (set.size === 0) this.providing.delete(digest)
    }
  }

  /**
   * Stops announcing `digest`: aborts provides in flight and deletes our own
   * provider record from kad-dht's store (`cancelReprovide`), which is the set
   * the re-provider walks, so the record is never re-published and our own
   * GET_PROVIDERS answers stop naming us. Records already held by other peers
   * lapse after their validity. Throws for a bad digest.
   */
  async withdraw(digest: string): Promise<void> {
    const cid = digestToCid(digest)
    for (const c of this.providing.get(digest) ?? []) c.abort()
    this.providing.delete(digest)
    await this.libp2p.services.dht.cancelReprovide(cid)
  }

  /**
   * Yields each peer (other than us, and accepted by `accept`) that provides `digest`, once, with the
   * addresses known for it, until the DHT query ends, `limit` is reached or
   * the deadline (`signal`, default DEFAULT_FIND_TIMEOUT_MS) passes; a deadline
   * ends the iteration quietly. Throws for a bad digest.
   */
  async *findProviders(digest: string, options: FindProvidersOptions = {}): AsyncIterable<ProviderInfo> {
    const cid = digestToCid(digest)
    const limit = options.limit ?? DEFAULT_FIND_LIMIT
    const signal = options.signal ?? AbortSignal.timeout(DEFAULT_FIND_TIMEOUT_MS)
    const self = this.libp2p.peerId
    const seen = new Set<string>()
    const started = performance.now()
    if (limit <= 0) return
    try {
      for await (const event of this.libp2p.services.dht.findProviders(cid, { signal })) {
        if (event.name !== 'PROVIDER') continue
        for (const p of event.providers) {
          const id = p.id.toString()
          if (p.id.equals(self) || seen.has(id) || !this.accept(id)) continue
          seen.add(id)
          yield { peerId: id, multiaddrs: await this.addressesOf(p.id, p.multiaddrs.map(ma => ma.toString())) }
          if (seen.size >= limit) return
        }
      }
    } catch (err) {
      if (!signal.aborted) throw err
    } finally {
      const seconds = (performance.now() - started) / 1000
      this.log.debug({ digest, found: seen.size, seconds }, 'provider lookup ended')
      this.onLookup?.(seconds, seen.size)
    }
  }

  /** The addresses a provider record carried, or else what the peer store knows. */
  private async addressesOf(peer: Parameters<PollenLibp2p['peerStore']['get']>[0], carried: string[]): Promise<string[]> {
    if (carried.length > 0) return [...new Set(carried)]
    try {
      const known = await this.libp2p.peerStore.get(peer)
      return known.addresses.map(a => a.multiaddr.toString())
    } catch {
      return []
    }
  }
}
