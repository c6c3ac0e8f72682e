/** The seed's defaults, in one place. */
export const DEFAULT_LISTEN = '127.0.0.1:5000'
export const DEFAULT_DATA_DIR = './pollen-data/seed'
export { DEFAULT_TAG_TTL_MS } from '../content/constants.js'
/** Used when no --upstream is given. */
export const DEFAULT_UPSTREAMS: Record<string, string> = { 'docker.io': 'https://registry-1.docker.io' }
/** Token realms allowed besides the upstream's own host, per registry. */
export const DEFAULT_REALM_HOSTS: Record<string, string[]> = { 'docker.io': ['auth.docker.io'] }
/** The seed's libp2p bootstrap node listens here by default. */
export const DEFAULT_P2P_LISTEN = '/ip4/0.0.0.0/tcp/5001'
/** A known tag answer is served stale when the remote has not answered a refresh within this. */
export const STALE_AFTER_MS = 5_000
