/** The soak's command line: `npm run chaos -- [options]`. */
import { parseArgs } from 'node:util'
import { parseDuration, parseSize } from '../protocol/units.js'
import {
  DEFAULT_AGENTS,
  DEFAULT_CACHE_SIZE,
  DEFAULT_DURATION,
  FAULT_PROBABILITY,
  IMAGES,
  IMAGE_BYTES,
  MAX_FD_SLOPE_PER_HOUR,
  MAX_RSS_SLOPE_MIB_PER_HOUR,
} from './constants.js'

export interface ChaosFlags {
  durationMs: number
  agents: number
  cacheSizeBytes: number
  /** Seed of every random choice (images' bytes, rollouts, faults); printed so a run can be replayed. */
  rngSeed: number
}

export const USAGE = `npm run chaos -- [options]

The soak: a docker-registry, a seed and N agents on this machine, doing rollouts of ${IMAGES}
generated images (a new version of some of them each time, so content churns) for --duration,
with agent caches small enough that every rollout evicts, and now and then a SIGKILL and
restart of an agent that is not pulling (its peers may be fetching from it; never agent 1). Every pulled
manifest and blob is checked against its sha256 while it streams. Samples each agent's and the
seed's RSS (VmRSS) and open fds every few seconds.

Options:
  --duration D     How long to roll out (default ${DEFAULT_DURATION}); 90s, 5m, 1h.
  --agents N       Number of agents, 2..16 (default ${DEFAULT_AGENTS}); faults need 3 or more.
  --cache-size S   Each agent's --cache-size (default ${DEFAULT_CACHE_SIZE}); a rollout pulls
                   about ${Math.round((IMAGES * IMAGE_BYTES) / 2 ** 20)} MiB per agent. Keep it below that to keep eviction going.
  --seed-rng N     Seed of every random choice, 0..4294967295 (default: from the clock; printed).
  -h, --help       Show this help.

Fault probability per rollout: ${FAULT_PROBABILITY}.
Exit status 0 only when all of these hold (slopes are least squares over the second half):
  - no request failed (every manifest and blob answered 200 with the right bytes);
  - the RSS slope (through each minute's lowest sample) of the seed and of agent 1, which is
    never killed, is at most ${MAX_RSS_SLOPE_MIB_PER_HOUR} MiB/h;
  - every process's open-fd slope is at most ${MAX_FD_SLOPE_PER_HOUR} fds/h;
  - every killed agent came back.
Exit 1 otherwise, 2 for bad flags, 130/143 when interrupted. Writes chaos/results/soak-<time>.json.`

/** Parses argv; returns 'help' for -h/--help; throws an Error with a one-line message for bad input. */
export function parseChaosFlags(argv: string[], now = Date.now()): ChaosFlags | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string' },
      agents: { type: 'string' },
      'cache-size': { type: 'string' },
      'seed-rng': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help === true) return 'help'
  const durationMs = wrap('duration', () => parseDuration(values.duration ?? DEFAULT_DURATION))
  if (durationMs < 10_000) throw new Error(`--duration: "${values.duration}" is shorter than 10s`)
  const agents = Number(values.agents ?? DEFAULT_AGENTS)
  if (!Number.isInteger(agents) || agents < 2 || agents > 16) throw new Error(`--agents: "${values.agents}" is not an integer 2..16`)
  const cacheSizeBytes = wrap('cache-size', () => parseSize(values['cache-size'] ?? DEFAULT_CACHE_SIZE))
  if (cacheSizeBytes < 2 ** 20) throw new Error(`--cache-size: "${values['cache-size']}" is below 1 MiB`)
  const rngSeed = values['seed-rng'] === undefined ? now % 4_294_967_296 : Number(values['seed-rng'])
  if (!Number.isInteger(rngSeed) || rngSeed < 0 || rngSeed > 4_294_967_295) throw new Error(`--seed-rng: "${values['seed-rng']}" is not an integer 0..4294967295`)
  return { durationMs, agents, cacheSizeBytes, rngSeed }
}

function wrap<T>(flag: string, parse: () => T): T {
  try {
    return parse()
  } catch (err) {
    throw new Error(`--${flag}: ${(err as Error).message}`)
  }
}
