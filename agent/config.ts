import { parseArgs, type ParseArgsConfig } from 'node:util'
export { ConfigError } from '../protocol/config-values.js'
import { ConfigError, durationFlag, fractionFlag, logLevelFlag, multiaddrFlag, parseHostPort, registryHostFlag, sizeFlag, wholeNumberFlag, type HostPort } from '../protocol/config-values.js'
import { mergeSources, withOrigins, type ConfigSources, type Merged, type Origins, type SourceRules } from '../protocol/config-sources.js'
import { DEFAULT_HIGH_WATERMARK, DEFAULT_LOW_WATERMARK, DEFAULT_TAG_TTL_MS } from '../content/constants.js'
import { isLoopbackHost } from '../protocol/loopback.js'
import { DEFAULT_CACHE_SIZE, DEFAULT_DATA_DIR, DEFAULT_HOSTS_DIR, DEFAULT_LISTEN, DEFAULT_MAX_UPLOADS, DEFAULT_NS, DEFAULT_P2P_LISTEN } from './constants.js'

export interface AgentConfig {
  listen: HostPort
  dataDir: string
  /** The seed's base URL; undefined runs standalone with an embedded upstream client. */
  seed?: string
  metricsListen?: HostPort
  cacheSize: number
  highWatermark: number
  lowWatermark: number
  defaultNs: string
  tagTtlMs: number
  logLevel: string
  p2p: P2PConfig
  /** The seed's admission issuer, signed into enrollment proofs. */
  seedIssuer: string
  /** A file holding a join token; with it the agent enrolls with the seed for an admission token. */
  joinTokenFile?: string
  /** A file holding an OIDC token the seed trusts (`--oidc-token-file`), read afresh for every enrollment; preferred over a join token. */
  oidcTokenFile?: string
  /** The fleet's admission audience (the seed's --audience), checked on peers' tokens. */
  seedAudience: string
  /**
   * How often the seed's revocation list is polled (ms); undefined means the default,
   * DEFAULT_REVOCATION_POLL_MS. Set by `--revocation-poll DURATION`, a flag left out of
   * --help (it exists for tests that need a revocation to arrive within seconds), at least
   * MIN_REVOCATION_POLL_MS so that a fleet cannot be told to hammer its seed.
   */
  revocationPollMs?: number
  /**
   * A file holding the token clients must send when the mirror listens beyond loopback
   * (`--mirror-token-file`); required then, so that no host on the network pulls through it.
   */
  mirrorTokenFile?: string
  /** Options set by the environment or the config file, for naming them in errors (keyLabel). */
  origins?: Origins
  /** Lines for main.ts to print: POLLEN_* variables that name no option and were ignored. */
  configWarnings?: string[]
}

/** Shortest `--revocation-poll` accepted. */
export const MIN_REVOCATION_POLL_MS = 1_000

export interface P2PConfig {
  /** Peer-to-peer is on when the agent has a seed or bootstrap peers. */
  enabled: boolean
  listen: string[]
  announce: string[]
  /** Extra bootstrap peers besides the seed's (multiaddrs ending in /p2p/<id>). */
  bootstrap: string[]
  maxUploads: number
  /** Upload bandwidth for all peers together, bytes/s; 0 = unlimited. */
  uploadLimit: number
}

export interface ConfigureContainerdConfig {
  agent: AgentConfig
  hostsDir: string
  /** Registries to point at the agent; empty with `all` for `_default`. */
  registries: string[]
  all: boolean
}

export const AGENT_HELP = `Usage: pollen-agent [options]
       pollen-agent configure-containerd --hosts-dir DIR (--registry NAME … | --all) [options]
       pollen-agent status [--url URL] [--json]     A running agent's state (see status --help).

The Pollen agent: containerd's registry mirror on an edge node, with a verified local cache
and the seed behind it. Without --seed it runs standalone: a caching mirror that pulls from
the registries itself, with credentials from ~/.docker/config.json if present.

Options:
  --config FILE               A YAML file of options (or POLLEN_CONFIG); see Configuration below.
  --listen HOST:PORT          Address of the mirror (default ${DEFAULT_LISTEN}). An address beyond
                              loopback needs --mirror-token-file.
  --mirror-token-file FILE    A token (16+ characters, e.g. openssl rand -hex 32) that clients must
                              send as X-Pollen-Mirror-Token or Authorization: Bearer. Required when
                              --listen is not a loopback address; configure-containerd writes it
                              into hosts.toml (mode 0600).
  --data DIR                  Data directory (default ${DEFAULT_DATA_DIR}).
  --seed URL                  The seed's URL, e.g. http://seed.internal:5000. Omit for standalone.
  --metrics-listen HOST:PORT  Serve /metrics, /healthz and /readyz here (off by default;
                              /healthz and /readyz are always on --listen too).
  --cache-size SIZE           Cache capacity (default ${DEFAULT_CACHE_SIZE}); 10GiB, 500MB, bytes.
  --cache-high-watermark F    Start evicting above this fraction of --cache-size (default 0.85).
  --cache-low-watermark F     Evict down to this fraction (default 0.70).
  --default-ns NS             Registry meant by requests without ?ns= (default ${DEFAULT_NS}).
  --tag-ttl DURATION          How long a tag's digest is reused before asking again (default ${DEFAULT_TAG_TTL_MS / 1000}s).
  --log-level LEVEL           trace, debug, info, warn, error (default info).
  --join-token-file FILE      A join token from 'pollen-seed join-token create' (or POLLEN_JOIN_TOKEN):
                              the agent enrolls with the seed and sends its admission token.
  --oidc-token-file FILE      An OIDC token the seed trusts (or POLLEN_OIDC_TOKEN_FILE), e.g. a
                              projected Kubernetes service-account token: the agent enrolls with it
                              instead of a join token, reading the file afresh each time (tokens
                              rotate). Preferred when a join token is given too. See the seed's --oidc-issuer.
  --seed-issuer NAME          The seed's --issuer, signed into enrollment proofs (default pollen-seed).
  --seed-audience NAME        The seed's --audience, required in peers' tokens (default pollen).
                              An enrolled agent serves blobs only to peers whose token is valid.

Peer-to-peer (on when --seed or --bootstrap is given):
  --p2p-listen MULTIADDR      libp2p listen address (default ${DEFAULT_P2P_LISTEN}). Repeatable.
  --p2p-announce MULTIADDR    Address to announce to peers instead (e.g. the node IP). Repeatable.
  --bootstrap MULTIADDR       A bootstrap peer (…/p2p/<PeerId>), besides the seed's. Repeatable.
  --max-uploads N             Concurrent uploads to peers (default ${DEFAULT_MAX_UPLOADS}).
  --upload-limit SIZE         Upload bandwidth to peers per second, e.g. 50MB (default unlimited).
  -h, --help                  Show this help.

configure-containerd writes DIR/<registry>/hosts.toml files that make containerd pull through
this agent's --listen address, keeping the registry as the fallback server:
  --hosts-dir DIR             containerd's hosts directory (default ${DEFAULT_HOSTS_DIR}).
  --registry NAME             A registry to mirror (docker.io, ghcr.io, …). Repeatable.
  --all                       Mirror every registry (writes DIR/_default/hosts.toml).
It reads the agent's options from the same file and environment; its own three are flags only.

Configuration: every option but --config and --help can also be set in the --config YAML file,
named without dashes (cache-size: 20GiB; repeatable options as a list, p2p-listen: [ … ]), or
in the environment as POLLEN_ and the name in upper snake case (POLLEN_CACHE_SIZE=20GiB;
repeatable options separated by commas). Flags win over the environment, the environment over
the file, the file over the defaults; a repeatable option's list comes whole from one source.
Unknown keys and POLLEN_ variables are errors. POLLEN_JOIN_TOKEN is not an option: it holds
a join token itself, used when --join-token-file is not set by a flag or POLLEN_JOIN_TOKEN_FILE.
`

export const AGENT_OPTIONS = {
  config: { type: 'string' },
  listen: { type: 'string' },
  data: { type: 'string' },
  seed: { type: 'string' },
  'metrics-listen': { type: 'string' },
  'cache-size': { type: 'string' },
  'cache-high-watermark': { type: 'string' },
  'cache-low-watermark': { type: 'string' },
  'default-ns': { type: 'string' },
  'tag-ttl': { type: 'string' },
  'log-level': { type: 'string' },
  'p2p-listen': { type: 'string', multiple: true },
  'p2p-announce': { type: 'string', multiple: true },
  bootstrap: { type: 'string', multiple: true },
  'max-uploads': { type: 'string' },
  'upload-limit': { type: 'string' },
  'join-token-file': { type: 'string' },
  'oidc-token-file': { type: 'string' },
  'mirror-token-file': { type: 'string' },
  'seed-issuer': { type: 'string' },
  'seed-audience': { type: 'string' },
  // Not in AGENT_HELP: see AgentConfig.revocationPollMs.
  'revocation-poll': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const

/** configure-containerd's own options, besides the agent's; flags only. */
export const CONFIGURE_OPTIONS = {
  'hosts-dir': { type: 'string' },
  registry: { type: 'string', multiple: true },
  all: { type: 'boolean' },
} as const

/** POLLEN_* variables the agent reads that are not options. */
export const AGENT_OTHER_ENV = ['POLLEN_JOIN_TOKEN'] as const

/**
 * Parses `pollen-agent [options]`, merged with the environment and the config file (`sources`,
 * read by main.ts). Throws ConfigError naming the bad key as the user wrote it.
 */
export function parseAgentArgs(argv: string[], sources: ConfigSources = {}): AgentConfig | 'help' {
  const flags = parse(argv, AGENT_OPTIONS)
  if (flags.help === true) return 'help'
  return buildAgentConfig(merge(AGENT_OPTIONS, flags, sources, {}))
}

/** Parses `pollen-agent configure-containerd …` (argv after the subcommand), with the agent's options merged as for parseAgentArgs. */
export function parseConfigureArgs(argv: string[], sources: ConfigSources = {}): ConfigureContainerdConfig | 'help' {
  const options = { ...AGENT_OPTIONS, ...CONFIGURE_OPTIONS } as const
  const flags = parse(argv, options)
  if (flags.help === true) return 'help'
  const merged = merge(options, flags, sources, { flagOnly: Object.keys(CONFIGURE_OPTIONS) })
  const values = merged.values
  const registries = ((values.registry as string[] | undefined) ?? []).map((r) => registryHostFlag('registry', r))
  const all = values.all === true
  if (all === (registries.length > 0)) throw new ConfigError('registry', 'give one or more --registry NAME, or --all')
  const hostsDir = values['hosts-dir']
  return { agent: buildAgentConfig(merged), hostsDir: typeof hostsDir === 'string' ? hostsDir : DEFAULT_HOSTS_DIR, registries, all }
}

type Values = Record<string, string | boolean | string[] | undefined>

function merge(options: NonNullable<ParseArgsConfig['options']>, flags: Values, sources: ConfigSources, rules: SourceRules): Merged<Values> {
  const merged = mergeSources(options, flags, sources, { ...rules, otherEnv: AGENT_OTHER_ENV })
  // POLLEN_JOIN_TOKEN is environment: it wins over a join-token-file from the config file.
  if (merged.origins?.['join-token-file']?.kind === 'file' && (sources.env?.POLLEN_JOIN_TOKEN?.trim() ?? '') !== '') {
    const { 'join-token-file': _dropped, ...origins } = merged.origins
    return { values: { ...merged.values, 'join-token-file': undefined }, origins: Object.keys(origins).length === 0 ? undefined : origins, warnings: merged.warnings }
  }
  return merged
}

function buildAgentConfig(merged: Merged<Values>): AgentConfig {
  return { ...withOrigins(merged, agentConfig), origins: merged.origins, ...(merged.warnings.length === 0 ? {} : { configWarnings: merged.warnings }) }
}

function parse(argv: string[], options: NonNullable<ParseArgsConfig['options']>): Values {
  try {
    return parseArgs({ args: argv, strict: true, allowPositionals: false, options }).values as Values
  } catch (err) {
    throw new ConfigError('arguments', (err as Error).message)
  }
}

function agentConfig(values: Values): AgentConfig {
  const str = (k: string): string | undefined => (typeof values[k] === 'string' ? (values[k] as string) : undefined)
  const seed = str('seed')
  if (seed !== undefined) {
    let url: URL
    try {
      url = new URL(seed)
    } catch {
      throw new ConfigError('seed', `"${seed}" is not a URL`)
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError('seed', 'must be http:// or https://')
  }
  const cacheSize = sizeFlag('cache-size', str('cache-size') ?? DEFAULT_CACHE_SIZE)
  if (cacheSize <= 0) throw new ConfigError('cache-size', 'must be larger than 0')
  const highWatermark = fractionFlag('cache-high-watermark', str('cache-high-watermark'), DEFAULT_HIGH_WATERMARK)
  const lowWatermark = fractionFlag('cache-low-watermark', str('cache-low-watermark'), DEFAULT_LOW_WATERMARK)
  if (lowWatermark >= highWatermark) throw new ConfigError('cache-low-watermark', 'must be below --cache-high-watermark')
  const logLevel = logLevelFlag(str('log-level') ?? 'info')
  const metrics = str('metrics-listen')
  const ttl = str('tag-ttl')
  const revocationPoll = str('revocation-poll')
  const revocationPollMs = revocationPoll === undefined ? undefined : durationFlag('revocation-poll', revocationPoll)
  if (revocationPollMs !== undefined && revocationPollMs < MIN_REVOCATION_POLL_MS) {
    throw new ConfigError('revocation-poll', `"${revocationPoll}" is shorter than ${MIN_REVOCATION_POLL_MS / 1000}s`)
  }
  const listen = parseHostPort('listen', str('listen') ?? DEFAULT_LISTEN)
  const mirrorTokenFile = fileFlag('mirror-token-file', str('mirror-token-file'))
  if (!isLoopbackHost(listen.host) && mirrorTokenFile === undefined) {
    throw new ConfigError('listen', `${listen.host}:${listen.port} is reachable from other hosts; give --mirror-token-file so that only clients holding the token can pull`)
  }
  return {
    listen,
    dataDir: str('data') ?? DEFAULT_DATA_DIR,
    seed: seed === undefined ? undefined : new URL(seed).origin,
    metricsListen: metrics === undefined ? undefined : parseHostPort('metrics-listen', metrics),
    cacheSize,
    highWatermark,
    lowWatermark,
    defaultNs: registryHostFlag('default-ns', str('default-ns') ?? DEFAULT_NS),
    tagTtlMs: ttl === undefined ? DEFAULT_TAG_TTL_MS : durationFlag('tag-ttl', ttl),
    logLevel,
    p2p: p2pConfig(values, seed !== undefined),
    seedIssuer: str('seed-issuer') ?? 'pollen-seed',
    joinTokenFile: str('join-token-file'),
    oidcTokenFile: fileFlag('oidc-token-file', str('oidc-token-file')),
    seedAudience: str('seed-audience') ?? 'pollen',
    revocationPollMs,
    mirrorTokenFile,
  }
}

function fileFlag(key: string, value: string | undefined): string | undefined {
  if (value === '') throw new ConfigError(key, 'give a file path')
  return value
}

function p2pConfig(values: Values, hasSeed: boolean): P2PConfig {
  const list = (k: string): string[] => (values[k] as string[] | undefined) ?? []
  const bootstrap = list('bootstrap').map((a) => multiaddrFlag('bootstrap', a))
  for (const a of bootstrap) if (!a.includes('/p2p/')) throw new ConfigError('bootstrap', `"${a}" must end in /p2p/<PeerId>`)
  const maxUploadsText = values['max-uploads'] as string | undefined
  const maxUploads = maxUploadsText === undefined ? DEFAULT_MAX_UPLOADS : wholeNumberFlag('max-uploads', maxUploadsText)
  const uploadLimitText = values['upload-limit'] as string | undefined
  return {
    enabled: hasSeed || bootstrap.length > 0,
    listen: (list('p2p-listen').length > 0 ? list('p2p-listen') : [DEFAULT_P2P_LISTEN]).map((a) => multiaddrFlag('p2p-listen', a)),
    announce: list('p2p-announce').map((a) => multiaddrFlag('p2p-announce', a)),
    bootstrap,
    maxUploads,
    uploadLimit: uploadLimitText === undefined ? 0 : sizeFlag('upload-limit', uploadLimitText),
  }
}
