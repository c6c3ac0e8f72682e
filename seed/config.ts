import { parseArgs } from 'node:util'
export { ConfigError, parseHostPort } from '../protocol/config-values.js'
import { ConfigError, durationFlag, logLevelFlag, multiaddrFlag, parseHostPort, registryHostFlag, type HostPort } from '../protocol/config-values.js'
import { DEFAULT_DATA_DIR, DEFAULT_LISTEN, DEFAULT_P2P_LISTEN, DEFAULT_REALM_HOSTS, DEFAULT_TAG_TTL_MS, DEFAULT_UPSTREAMS } from './constants.js'

export interface UpstreamConfig {
  /** Canonical registry host, the `ns` agents ask for. */
  ns: string
  /** Base URL of the registry's API. */
  url: string
  /** Hosts besides the upstream's own that may act as its token realm. */
  realmHosts: string[]
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
}

export const SEED_HELP = `Usage: pollen-seed [options]

The Pollen seed: a pull-through cache in front of upstream registries. It alone holds
the upstream credentials and serves the OCI pull API to agents.

Options:
  --listen HOST:PORT          Address of the registry API (default ${DEFAULT_LISTEN}).
  --data DIR                  Data directory for the content cache (default ${DEFAULT_DATA_DIR}).
  --upstream NS=URL           An upstream registry: NS is the registry host agents name with
                              ?ns=, URL its API base. Repeatable. Default:
                              docker.io=https://registry-1.docker.io
  --realm-host NS=HOST        Also trust HOST as a token realm for upstream NS (the upstream's
                              own host always is; docker.io trusts auth.docker.io). Repeatable.
  --credentials FILE          Docker config.json with upstream credentials ("auths": auth, or
                              username/password). Never logged, never sent to clients.
  --metrics-listen HOST:PORT  Serve /metrics, /healthz and /readyz here (off by default;
                              /healthz and /readyz are always on --listen too).
  --tag-ttl DURATION          How long a tag's digest is cached before asking upstream again
                              (default ${DEFAULT_TAG_TTL_MS / 1000}s). The last answer is served when upstream is down.
  --default-ns NS             Registry meant by requests without ?ns= (default docker.io).
  --log-level LEVEL           trace, debug, info, warn, error (default info).
  --p2p-listen MULTIADDR      libp2p address of the seed's bootstrap node (default ${DEFAULT_P2P_LISTEN}).
                              Repeatable. Agents learn it from GET /v1/bootstrap.
  --p2p-announce MULTIADDR    Address to announce to agents instead (e.g. the seed's service IP). Repeatable.
  -h, --help                  Show this help.
`

/** Parses the seed's command line. Throws ConfigError naming the bad flag. */
export function parseSeedArgs(argv: string[]): SeedConfig | 'help' {
  let values
  try {
    ;({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
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
        help: { type: 'boolean', short: 'h' },
      },
    }))
  } catch (err) {
    throw new ConfigError('arguments', (err as Error).message)
  }
  if (values.help === true) return 'help'
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
  }
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
