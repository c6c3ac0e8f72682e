import { parseDigest } from './digest.js'

/**
 * Seed-coordinated fan-out: before fetching a blob, an agent asks the seed where from.
 * The seed, which sees every agent that misses a blob, answers the first few "from me"
 * (`parent: null`) and each later one with a parent: an agent already fetching the blob,
 * whose fill it follows as it grows. Pipelined chains of agents thus spread a rollout
 * over the fleet's uplinks instead of the seed's. No I/O here: the path and the answer's
 * codec, shared by the seed (which writes it) and the agent (which checks it).
 *
 * `GET /v1/fanout/<digest>` with `Authorization: Bearer <admission token>`; the token's
 * `sub` names the asking agent.
 */
export const FANOUT_PATH_PREFIX = '/v1/fanout/'

/** A parent: its PeerId and the addresses the seed knows it by (each may lack /p2p/). */
export interface FanoutParent {
  peerId: string
  multiaddrs: string[]
}

export interface FanoutAnswer {
  /** null: fetch from the seed (or from any complete copy found in the DHT). */
  parent: FanoutParent | null
}

/** Bounds that keep a hostile or broken answer small. */
const MAX_ADDRS = 16
const MAX_FIELD_CHARS = 512

/** The digest named by a fan-out path, or undefined when the path is not one (or the digest is invalid). */
export function fanoutDigest(path: string): string | undefined {
  if (!path.startsWith(FANOUT_PATH_PREFIX)) return undefined
  const digest = path.slice(FANOUT_PATH_PREFIX.length)
  try {
    return parseDigest(digest).value
  } catch {
    return undefined
  }
}

/** Parses a fan-out answer strictly; throws TypeError for anything else. */
export function parseFanoutAnswer(value: unknown): FanoutAnswer {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new TypeError('fan-out answer is not an object')
  const parent = (value as { parent?: unknown }).parent
  if (parent === null) return { parent: null }
  if (typeof parent !== 'object' || parent === undefined || Array.isArray(parent)) throw new TypeError('fan-out answer has no "parent"')
  const { peerId, multiaddrs } = parent as { peerId?: unknown; multiaddrs?: unknown }
  if (typeof peerId !== 'string' || peerId.length === 0 || peerId.length > MAX_FIELD_CHARS || !/^[1-9A-HJ-NP-Za-km-z]+$/.test(peerId)) {
    throw new TypeError('fan-out parent "peerId" is not a base58 PeerId')
  }
  if (!Array.isArray(multiaddrs) || multiaddrs.length > MAX_ADDRS) throw new TypeError(`fan-out parent "multiaddrs" is not a list of at most ${MAX_ADDRS}`)
  for (const a of multiaddrs) {
    if (typeof a !== 'string' || !a.startsWith('/') || a.length > MAX_FIELD_CHARS) throw new TypeError('fan-out parent address is not a multiaddr string')
  }
  return { parent: { peerId, multiaddrs: multiaddrs as string[] } }
}
