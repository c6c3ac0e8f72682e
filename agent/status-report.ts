/**
 * The answer of the agent's `GET /v1/status` (on the ops listener and the mirror listener):
 * the shape `pollen-agent status` reads. It carries no secret: no token, no credential, and
 * log messages are scrubbed. Keep it stable: add fields, never rename or remove them; a
 * change that breaks readers bumps `schema`.
 */

/** The path of the status endpoint. */
export const STATUS_PATH = '/v1/status'

/** The version of this shape. */
export const STATUS_SCHEMA = 1

/**
 * How the agent serves now: `standalone` (no seed: it pulls from registries itself), `seed`
 * (the seed answers), `cache-only` (a seed is configured but does not answer: the agent
 * serves what its cache and its peers hold; tags resolve to their last known digest).
 */
export type AgentMode = 'standalone' | 'seed' | 'cache-only'

/** A warning or error the agent logged. */
export interface StatusLogEntry {
  /** ISO 8601. */
  time: string
  level: 'warn' | 'error' | 'fatal'
  /** The logging component (`fill`, `p2p`, `token-manager`, …), when known. */
  component?: string
  msg: string
  /** The error's message, when the line carried one. */
  err?: string
}

export interface AgentStatusReport {
  schema: typeof STATUS_SCHEMA
  /** The agent's package version. */
  version: string
  /** The agent's libp2p PeerId; null when it runs without p2p and without admission. */
  peerId: string | null
  mode: AgentMode
  /** Seconds since the agent started. */
  uptimeSeconds: number
  /** null when standalone. */
  seed: {
    url: string
    reachable: boolean
    /** When the seed was last probed (ISO 8601); null before the first probe ended. */
    checkedAt: string | null
    /** The last failed probe, kept after the seed is reachable again; null when none failed. */
    lastError: { time: string; message: string } | null
  } | null
  token: {
    /** The agent enrolls with the seed (a join token or an OIDC token file is configured). */
    enrolled: boolean
    /** It holds an admission token that has not expired. */
    valid: boolean
    /** Expiry of the token held (or held last), ISO 8601; null when it never held one. */
    expiresAt: string | null
  }
  cache: {
    /** Bytes of committed content. */
    bytes: number
    /** The size the cache is kept under (--cache-size). */
    capacity: number
  }
  peers: {
    /** Whether the agent runs a libp2p node. */
    enabled: boolean
    /** Peers with an open libp2p connection. */
    connected: number
    /** Peers in the DHT routing table. */
    routingTable: number
  }
  /** The last (at most 10) warnings and errors logged, oldest first. */
  lastErrors: StatusLogEntry[]
}
