import { request } from 'undici'
import type { Logger } from 'pino'
import type { Digest } from '../../protocol/digest.js'
import { FANOUT_PATH_PREFIX, parseFanoutAnswer } from '../../protocol/fanout.js'
import type { ProviderInfo } from './router.js'

/** Deadline for the seed's answer: it is one map lookup there, so a slow answer means a busy or distant seed. */
export const FANOUT_ASK_TIMEOUT_MS = 2_000
/** Largest answer read. */
const MAX_ANSWER_BYTES = 16 * 1024
/** After a seed without the endpoint (404) or with a broken one, don't ask it again for this long. */
const UNSUPPORTED_BACKOFF_MS = 5 * 60_000

/**
 * Where to fetch a blob from, as the seed plans it (protocol/fanout.ts): a parent to follow,
 * null for "from the seed (or a complete copy in the DHT)", undefined when the seed could
 * not say (no token, seed down, an older seed): then the agent plans alone.
 */
export type AskParent = (digest: Digest, signal?: AbortSignal) => Promise<ProviderInfo | null | undefined>

export interface SeedParentsComponents {
  /** The agent's admission token; without one the seed is not asked. */
  token: () => string | undefined
  logger: Logger
  now?: () => number
}

/** Asks `GET <seed>/v1/fanout/<digest>`. Never throws. */
export function seedParents(seedUrl: string, c: SeedParentsComponents): AskParent {
  const now = c.now ?? Date.now
  let quietUntil = 0
  return async (digest, signal) => {
    const token = c.token()
    if (token === undefined || now() < quietUntil) return undefined
    const deadline = AbortSignal.timeout(FANOUT_ASK_TIMEOUT_MS)
    try {
      const res = await request(`${seedUrl}${FANOUT_PATH_PREFIX}${digest.value}`, {
        headers: { authorization: `Bearer ${token}` },
        signal: signal === undefined ? deadline : AbortSignal.any([signal, deadline]),
      })
      if (res.statusCode !== 200) {
        await res.body.dump()
        if (res.statusCode === 404 || res.statusCode === 405) quietUntil = now() + UNSUPPORTED_BACKOFF_MS
        c.logger.debug({ digest: digest.value, status: res.statusCode }, 'the seed did not plan this fetch')
        return undefined
      }
      const length = Number(res.headers['content-length'] ?? 0)
      if (length > MAX_ANSWER_BYTES) {
        await res.body.dump()
        throw new TypeError(`fan-out answer of ${length} bytes`)
      }
      const { parent } = parseFanoutAnswer(await res.body.json())
      return parent
    } catch (err) {
      if (err instanceof TypeError || err instanceof SyntaxError) quietUntil = now() + UNSUPPORTED_BACKOFF_MS
      c.logger.debug({ digest: digest.value, err: (err as Error).message }, 'could not ask the seed where to fetch from')
      return undefined
    }
  }
}
