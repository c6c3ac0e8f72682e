/** The agent's defaults, in one place. */
export const DEFAULT_LISTEN = '127.0.0.1:5050'
export const DEFAULT_DATA_DIR = './pollen-data/agent'
export const DEFAULT_CACHE_SIZE = '10GiB'
export const DEFAULT_NS = 'docker.io'
/** The seed hop is on the fleet's network: fail over to stale answers quickly. */
export const SEED_REQUEST_TIMEOUT_MS = 15_000
/**
 * Retries of a seed request that failed to connect or got a 5xx: backoff 0.2 s doubling, about
 * 6–12 s in all, so that a seed restart does not fail the blob fetches in flight (a known tag is
 * still answered stale after STALE_AFTER_MS, and a fill resumes on top of this).
 */
export const SEED_MAX_RETRIES = 6
/** Containerd's default certs.d directory. */
export const DEFAULT_HOSTS_DIR = '/etc/containerd/certs.d'
/** The agent's libp2p node listens here by default. */
export const DEFAULT_P2P_LISTEN = '/ip4/0.0.0.0/tcp/5051'
export const DEFAULT_MAX_UPLOADS = 8
/** How often an agent without peers asks the seed for its bootstrap address again. */
export const SEED_BOOTSTRAP_RETRY_MS = 10_000
/** A known tag answer is served stale when the remote has not answered a refresh within this. */
export const STALE_AFTER_MS = 3_000
/** How often the agent probes its seed (`GET /healthz`) for pollen_agent_seed_up, /readyz and /v1/status. */
export const SEED_PROBE_INTERVAL_MS = 10_000
export const SEED_PROBE_TIMEOUT_MS = 3_000
/** `pollen-agent status`: how long it waits for the agent's answer. */
export const STATUS_TIMEOUT_MS = 5_000
