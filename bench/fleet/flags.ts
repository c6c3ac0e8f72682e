/** The fleet bench's command line. */
import { parseArgs } from 'node:util'
import type { SystemName } from './estimate.js'
import { parseRate } from './rates.js'

export interface FleetFlags {
  nodes: number[]
  imageMiB: number
  edgeRateBps: number
  seedRateBps: number
  wanRateBps: number
  systems: SystemName[]
  jsonPath: string
  /** Keep the seed's and agents' output of each Pollen run here. */
  logDir?: string
}

export const USAGE = `npm run bench:fleet -- [options]
  --nodes LIST        Fleet sizes, comma-separated (default 8,16,32).
  --image-mib N       Image size in MiB, split into 4 layers (default 256).
  --edge-rate RATE    Each edge node's link, both directions (default 100mbit).
  --seed-rate RATE    The seed's (and the pull-through cache's) uplink (default 1gbit).
  --wan-rate RATE     The upstream registry's link (default 500mbit).
  --systems LIST      Any of direct,proxy,pollen (default all three).
  --json PATH         Raw results (default bench/fleet/results.json).
  --logs DIR          Keep the seed's and agents' output of each Pollen run in DIR/pollen-<N>/.
Rates are tc's: 500kbit, 100mbit, 1gbit (10^3 multiples of bits per second).`

const SYSTEMS: SystemName[] = ['direct', 'proxy', 'pollen']

/** Parses argv; returns 'help' for -h; throws an Error with a one-line message for bad input. */
export function parseFleetFlags(argv: string[]): FleetFlags | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      nodes: { type: 'string' },
      'image-mib': { type: 'string' },
      'edge-rate': { type: 'string' },
      'seed-rate': { type: 'string' },
      'wan-rate': { type: 'string' },
      systems: { type: 'string' },
      json: { type: 'string' },
      logs: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help === true) return 'help'
  const nodes = (values.nodes ?? '8,16,32').split(',').map((s) => Number(s.trim()))
  if (nodes.some((n) => !Number.isInteger(n) || n < 1 || n > 500)) throw new Error(`--nodes: "${values.nodes}" is not a list of integers 1..500`)
  const imageMiB = Number(values['image-mib'] ?? 256)
  if (!Number.isInteger(imageMiB) || imageMiB < 1) throw new Error(`--image-mib: "${values['image-mib']}" is not a positive integer`)
  const systems = (values.systems ?? SYSTEMS.join(',')).split(',').map((s) => s.trim()) as SystemName[]
  const unknown = systems.filter((s) => !SYSTEMS.includes(s))
  if (unknown.length > 0) throw new Error(`--systems: unknown ${unknown.join(', ')} (use ${SYSTEMS.join(', ')})`)
  return {
    nodes,
    imageMiB,
    edgeRateBps: parseRate('edge-rate', values['edge-rate'] ?? '100mbit'),
    seedRateBps: parseRate('seed-rate', values['seed-rate'] ?? '1gbit'),
    wanRateBps: parseRate('wan-rate', values['wan-rate'] ?? '500mbit'),
    systems: SYSTEMS.filter((s) => systems.includes(s)),
    jsonPath: values.json ?? 'bench/fleet/results.json',
    logDir: values.logs,
  }
}
