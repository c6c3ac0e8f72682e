export { ConfigError, parseHostPort } from '../protocol/config-values.js'
export { DEFAULT_AUDIENCE, DEFAULT_ISSUER } from './constants.js'
export { SEED_HELP } from './help.js'
export type { SeedAdminCommand } from './admin-args.js'
import { DEFAULT_TOKEN_LIFETIME_S, MAX_SCOPE_PATTERNS, MAX_TOKEN_LIFETIME_S } from '../protocol/admission.js'
import { ConfigError, durationFlag, fractionFlag, logLevelFlag, multiaddrFlag, parseHostPort, registryHostFlag, sizeFlag, wholeNumberFlag, type HostPort } from '../protocol/config-values.js'
import { DEFAULT_HIGH_WATERMARK, DEFAULT_LOW_WATERMARK } from '../content/constants.js'
import { isLoopbackHost } from '../protocol/loopback.js'
import { mergeSources, withOrigins, type ConfigSources, type Origins } from '../protocol/config-sources.js'
import { DEFAULT_KEY_ROTATION_MS, DEFAULT_OIDC_SCOPE } from './admission/constants.js'
import { DEFAULT_AUDIENCE, DEFAULT_DATA_DIR, DEFAULT_ISSUER, DEFAULT_LISTEN, DEFAULT_P2P_LISTEN, DEFAULT_REALM_HOSTS, DEFAULT_TAG_TTL_MS, DEFAULT_UPSTREAMS } from './constants.js'
import { parsePreheatArgs, type PreheatCommand } from './preheat-args.js'
import { parseJoinTokenCreate, parseJoinTokenList, parseJoinTokenRevoke, parseRevoke, type SeedAdminCommand } from './admin-args.js'
import { argumentError, parse, positiveDuration, scopeFlag, type Options } from './cli-args.js'
import { DEFAULT_FANOUT_CHILDREN, DEFAULT_FANOUT_DIRECT } from './fanout/planner.js'

export interface UpstreamConfig {
  /** Canonical registry host, the `ns` agents ask for. */
  ns: string
  /** Base URL of the registry's API. */
  url: string
  /** Hosts besides the upstream's own that may act as its token realm. */
  realmHosts: string[]
}

export interface CacheLimit {
  sizeBytes: number
  /** Eviction starts above this fraction of sizeBytes… */
  highWatermark: number
  /** …and removes least recently used blobs until the cache is under this one. */
  lowWatermark: number
}

export interface SeedConfig {
  listen: HostPort
  dataDir: string
  upstreams: UpstreamConfig[]
  credentialsFile?: string
  metricsListen?: HostPort
  tagTtlMs: number
  defaultNs: string
  logLevel: string
  /** libp2p listen addresses of the seed's bootstrap node. */
  p2pListen: string[]
  /** Addresses to announce instead of the listen addresses. */
  p2pAnnounce: string[]
  /** A signing key signs admission tokens for this long before the next key takes over. */
  keyRotationMs: number
  /** Lifetime of the admission tokens the seed issues; > 0 and ≤ MAX_TOKEN_LIFETIME_S × 1000. */
  tokenTtlMs: number
  /** `iss` of issued admission tokens. */
  issuer: string
  /** `aud` of issued admission tokens; agents and peers refuse tokens for another audience. */
  audience: string
  /**
   * Require a valid admission token with a covering scope on every manifest and blob request
   * (the default; `--anonymous-pulls` turns it off for a trusted network).
   */
  requireAdmission: boolean
  /** OIDC enrollment: agents present a token from this issuer instead of a join token. Off when undefined. */
  oidc?: OidcConfig
  /** Options set by the environment or the config file, for naming them in errors (keyLabel). */
  origins?: Origins
  /** Lines for main.ts to print: POLLEN_* variables that name no option and were ignored. */
  configWarnings?: string[]
  /** Agents per blob the seed serves itself during a rollout (0: every agent; see seed/fanout/planner.ts). */
  fanoutDirect: number
  /** Followers each agent serves at once during a rollout. */
  fanoutChildren: number
  /** The content cache's capacity and eviction watermarks; undefined: no limit (the cache grows with what agents pull). */
  cache?: CacheLimit
}

export interface OidcConfig {
  /** Exact `iss` of accepted tokens. */
  issuer: string
  /** A JWKS file path or an http(s) URL (https, or http on loopback). */
  jwks: string
  /** Required among the tokens' `aud`. */
  audience: string
  /** Repository patterns granted to OIDC-admitted agents. */
  scope: string[]
  /** When non-empty, `sub` must match one (`*` globs). */
  subjects: string[]
}

export type SeedCommand = 'help' | { kind: 'serve'; config: SeedConfig } | SeedAdminCommand | PreheatCommand

/** A join token may stay redeemable for at most a year: a long-lived secret that admits nodes should not outlive that. */
const MAX_NAME_LENGTH = 256


/**
 * Parses the seed's command line: `pollen-seed [options]` runs the seed, `join-token …` and
 * `revoke …` are administrative commands. Throws ConfigError naming the bad flag or argument.
 */
export function parseSeedCommand(argv: string[], sources: ConfigSources = {}): SeedCommand {
  const [first, second] = argv
  if (first === 'join-token') {
    if (second === 'create') return parseJoinTokenCreate(argv.slice(2))
    if (second === 'list') return parseJoinTokenList(argv.slice(2))
    if (second === 'revoke') return parseJoinTokenRevoke(argv.slice(2))
    if (second === '-h' || second === '--help') return 'help'
    throw argumentError('command', `"join-token" needs create, list or revoke${second === undefined ? '' : `, not "${second.slice(0, 100)}"`} (see --help)`)
  }
  if (first === 'revoke') return parseRevoke(argv.slice(1))
  if (first === 'preheat') return parsePreheatArgs(argv.slice(1), { issuer: DEFAULT_ISSUER, audience: DEFAULT_AUDIENCE })
  if (first !== undefined && !first.startsWith('-')) {
    throw argumentError('command', `unknown command "${first.slice(0, 100)}" (commands: join-token, revoke, preheat; see --help)`)
  }
  const config = parseSeedArgs(argv, sources)
  return config === 'help' ? 'help' : { kind: 'serve', config }
}

/** True when `argv` runs the seed (no command): the one use of the config file and the environment. */
export function servesSeed(argv: readonly string[]): boolean {
  return argv[0] === undefined || argv[0].startsWith('-')
}

/**
 * Parses `pollen-seed [options]` (running the seed), merged with the environment and the config
 * file (`sources`, read by main.ts). Throws ConfigError naming the bad key as the user wrote it.
 */
export function parseSeedArgs(argv: string[], sources: ConfigSources = {}): SeedConfig | 'help' {
  const { values: flags } = parse(argv, SERVE_OPTIONS, false)
  if (flags.help === true) return 'help'
  const merged = mergeSources(SERVE_OPTIONS, flags, sources)
  return { ...withOrigins(merged, seedConfig), origins: merged.origins, ...(merged.warnings.length === 0 ? {} : { configWarnings: merged.warnings }) }
}

function seedConfig(values: ServeValues): SeedConfig {
  const upstreams = parseUpstreams(values.upstream ?? Object.entries(DEFAULT_UPSTREAMS).map(([ns, url]) => `${ns}=${url}`))
  for (const spec of values['realm-host'] ?? []) {
    const [ns, host] = splitPair('realm-host', spec)
    const upstream = upstreams.find((u) => u.ns === registryHostFlag('realm-host', ns))
    if (upstream === undefined) throw new ConfigError('realm-host', `"${ns}" is not an --upstream`)
    upstream.realmHosts.push(host.toLowerCase())
  }
  const defaultNs = registryHostFlag('default-ns', values['default-ns'] ?? 'docker.io')
  const logLevel = logLevelFlag(values['log-level'] ?? 'info')
  return {
    listen: parseHostPort('listen', values.listen ?? DEFAULT_LISTEN),
    dataDir: values.data ?? DEFAULT_DATA_DIR,
    upstreams,
    credentialsFile: values.credentials,
    metricsListen: values['metrics-listen'] === undefined ? undefined : parseHostPort('metrics-listen', values['metrics-listen']),
    tagTtlMs: values['tag-ttl'] === undefined ? DEFAULT_TAG_TTL_MS : durationFlag('tag-ttl', values['tag-ttl']),
    defaultNs,
    logLevel,
    p2pListen: (values['p2p-listen'] ?? [DEFAULT_P2P_LISTEN]).map((a) => multiaddrFlag('p2p-listen', a)),
    p2pAnnounce: (values['p2p-announce'] ?? []).map((a) => multiaddrFlag('p2p-announce', a)),
    keyRotationMs: values['key-rotation'] === undefined ? DEFAULT_KEY_ROTATION_MS : positiveDuration('key-rotation', values['key-rotation']),
    tokenTtlMs: values['token-ttl'] === undefined ? DEFAULT_TOKEN_LIFETIME_S * 1000 : tokenTtl(values['token-ttl']),
    issuer: nameFlag('issuer', values.issuer ?? DEFAULT_ISSUER),
    audience: nameFlag('audience', values.audience ?? DEFAULT_AUDIENCE),
    requireAdmission: values['anonymous-pulls'] !== true,
    fanoutDirect: values['fanout-direct'] === undefined ? DEFAULT_FANOUT_DIRECT : wholeNumberFlag('fanout-direct', values['fanout-direct']),
    fanoutChildren: values['fanout-children'] === undefined ? DEFAULT_FANOUT_CHILDREN : wholeNumberFlag('fanout-children', values['fanout-children'], 1),
    ...cacheFlags(values),
    ...oidcFlags(values),
  }
}

export const SERVE_OPTIONS = {
  config: { type: 'string' },
  listen: { type: 'string' },
  data: { type: 'string' },
  upstream: { type: 'string', multiple: true },
  'realm-host': { type: 'string', multiple: true },
  credentials: { type: 'string' },
  'metrics-listen': { type: 'string' },
  'tag-ttl': { type: 'string' },
  'default-ns': { type: 'string' },
  'log-level': { type: 'string' },
  'p2p-listen': { type: 'string', multiple: true },
  'p2p-announce': { type: 'string', multiple: true },
  'key-rotation': { type: 'string' },
  'token-ttl': { type: 'string' },
  issuer: { type: 'string' },
  audience: { type: 'string' },
  'anonymous-pulls': { type: 'boolean' },
  'oidc-issuer': { type: 'string' },
  'oidc-jwks': { type: 'string' },
  'oidc-audience': { type: 'string' },
  'oidc-scope': { type: 'string', multiple: true },
  'oidc-subject': { type: 'string', multiple: true },
  'fanout-direct': { type: 'string' },
  'fanout-children': { type: 'string' },
  'cache-size': { type: 'string' },
  'cache-high-watermark': { type: 'string' },
  'cache-low-watermark': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies Options

function tokenTtl(value: string): number {
  const ms = positiveDuration('token-ttl', value)
  if (ms > MAX_TOKEN_LIFETIME_S * 1000) throw new ConfigError('token-ttl', `"${value}" is longer than the longest admission-token lifetime, ${MAX_TOKEN_LIFETIME_S}s`)
  return ms
}

/** A token issuer or audience: printable, no spaces. */
function nameFlag(key: string, value: string): string {
  if (value.length === 0 || value.length > MAX_NAME_LENGTH || !/^[\x21-\x7e]+$/.test(value)) {
    throw new ConfigError(key, `"${value.slice(0, 100)}" must be 1 to ${MAX_NAME_LENGTH} printable characters without spaces`)
  }
  return value
}

type ServeValues = ReturnType<typeof parse<typeof SERVE_OPTIONS>>['values']

/** `--cache-size` with its watermarks; the watermarks alone are refused, since they would do nothing. */
function cacheFlags(values: ServeValues): { cache?: CacheLimit } {
  const size = values['cache-size']
  if (size === undefined) {
    for (const key of ['cache-high-watermark', 'cache-low-watermark'] as const) {
      if (values[key] !== undefined) throw new ConfigError(key, 'needs --cache-size')
    }
    return {}
  }
  const sizeBytes = sizeFlag('cache-size', size)
  if (!(sizeBytes > 0)) throw new ConfigError('cache-size', 'must be larger than 0')
  const highWatermark = fractionFlag('cache-high-watermark', values['cache-high-watermark'], DEFAULT_HIGH_WATERMARK)
  const lowWatermark = fractionFlag('cache-low-watermark', values['cache-low-watermark'], DEFAULT_LOW_WATERMARK)
  if (lowWatermark >= highWatermark) throw new ConfigError('cache-low-watermark', 'must be below --cache-high-watermark')
  return { cache: { sizeBytes, highWatermark, lowWatermark } }
}

/** The OIDC enrollment flags: issuer, JWKS and audience all or none; scope and subject only with them. */
function oidcFlags(values: ServeValues): { oidc?: OidcConfig } {
  const issuer = values['oidc-issuer']
  const jwks = values['oidc-jwks']
  const audience = values['oidc-audience']
  if (issuer === undefined && jwks === undefined && audience === undefined) {
    for (const key of ['oidc-scope', 'oidc-subject'] as const) {
      if (values[key] !== undefined) throw new ConfigError(key, 'needs --oidc-issuer, --oidc-jwks and --oidc-audience')
    }
    return {}
  }
  if (issuer === undefined) throw new ConfigError('oidc-issuer', 'is required with --oidc-jwks and --oidc-audience')
  if (jwks === undefined) throw new ConfigError('oidc-jwks', 'is required with --oidc-issuer: give a JWKS file or URL')
  if (audience === undefined) throw new ConfigError('oidc-audience', 'is required with --oidc-issuer')
  const subjects = values['oidc-subject'] ?? []
  if (subjects.length > MAX_SCOPE_PATTERNS) throw new ConfigError('oidc-subject', `at most ${MAX_SCOPE_PATTERNS} patterns`)
  for (const subject of subjects) {
    if (subject.length === 0 || subject.length > 512 || !/^[\x20-\x7e]+$/.test(subject)) throw new ConfigError('oidc-subject', `"${subject.slice(0, 100)}" must be 1 to 512 printable characters`)
  }
  return {
    oidc: {
      issuer: nameFlag('oidc-issuer', issuer),
      jwks: jwksFlag(jwks),
      audience: nameFlag('oidc-audience', audience),
      scope: scopeFlag(values['oidc-scope'], 'oidc-scope', DEFAULT_OIDC_SCOPE),
      subjects,
    },
  }
}

/** A JWKS file path, or an https URL (http only to a loopback host), without credentials. */
function jwksFlag(value: string): string {
  if (value === '') throw new ConfigError('oidc-jwks', 'give a JWKS file or URL')
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return value
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new ConfigError('oidc-jwks', `"${value.slice(0, 100)}" is not a URL`)
  }
  if (url.username !== '' || url.password !== '') throw new ConfigError('oidc-jwks', 'the URL must not carry credentials')
  const loopback = isLoopbackHost(url.hostname)
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) throw new ConfigError('oidc-jwks', 'must be an https:// URL (http:// only on loopback) or a file')
  return url.href
}

function parseUpstreams(specs: string[]): UpstreamConfig[] {
  const out: UpstreamConfig[] = []
  for (const spec of specs) {
    const [nsRaw, url] = splitPair('upstream', spec)
    const ns = registryHostFlag('upstream', nsRaw)
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch {
      throw new ConfigError('upstream', `"${url}" is not a URL`)
    }
    if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw new ConfigError('upstream', `"${url}" must be http:// or https://`)
    if (parsed.username !== '' || parsed.password !== '') throw new ConfigError('upstream', 'put credentials in --credentials, not in the URL')
    if (out.some((u) => u.ns === ns)) throw new ConfigError('upstream', `"${ns}" is given twice`)
    out.push({ ns, url: parsed.origin, realmHosts: [...(DEFAULT_REALM_HOSTS[ns] ?? [])] })
  }
  return out
}

function splitPair(key: string, spec: string): [string, string] {
  const eq = spec.indexOf('=')
  if (eq <= 0 || eq === spec.length - 1) throw new ConfigError(key, `"${spec}" must look like NAME=VALUE`)
  return [spec.slice(0, eq), spec.slice(eq + 1)]
}
