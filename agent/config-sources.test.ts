import { describe, expect, it } from 'vitest'
import type { ConfigSources } from '../protocol/config-sources.js'
import { configErrorMessage } from '../test/helpers/config-error.js'
import { parseAgentArgs, parseConfigureArgs, type AgentConfig, type ConfigureContainerdConfig } from './config.js'

const PATH = '/etc/pollen/agent.yaml'
const parse = (argv: string[], sources: ConfigSources = {}): AgentConfig => parseAgentArgs(argv, sources) as AgentConfig
const yaml = (text: string): ConfigSources['file'] => ({ path: PATH, text })

describe('agent configuration sources', () => {
  it('takes a scalar option from the flag over the environment over the file over the default', () => {
    const file = yaml('cache-size: 3GiB\n')
    const env = { POLLEN_CACHE_SIZE: '2GiB' }
    expect(parse([]).cacheSize).toBe(10 * 2 ** 30)
    expect(parse([], { file }).cacheSize).toBe(3 * 2 ** 30)
    expect(parse([], { env, file }).cacheSize).toBe(2 * 2 ** 30)
    expect(parse(['--cache-size', '1GiB'], { env, file }).cacheSize).toBe(2 ** 30)
  })

  it('takes a repeatable option whole from the flag, else the environment, else the file, else the default', () => {
    const file = yaml("p2p-announce:\n  - /ip4/10.0.0.1/tcp/5051\n  - /ip4/10.0.0.2/tcp/5051\np2p-listen: [ '/ip4/0.0.0.0/tcp/6000' ]\n")
    const env = { POLLEN_P2P_ANNOUNCE: '/ip4/10.0.0.3/tcp/5051,/ip4/10.0.0.4/tcp/5051' }
    expect(parse([]).p2p.announce).toEqual([])
    expect(parse([], { file }).p2p.announce).toEqual(['/ip4/10.0.0.1/tcp/5051', '/ip4/10.0.0.2/tcp/5051'])
    expect(parse([], { env, file }).p2p.announce).toEqual(['/ip4/10.0.0.3/tcp/5051', '/ip4/10.0.0.4/tcp/5051'])
    expect(parse(['--p2p-announce', '/ip4/10.0.0.5/tcp/5051'], { env, file }).p2p.announce).toEqual(['/ip4/10.0.0.5/tcp/5051'])
    expect(parse([], { env, file }).p2p.listen).toEqual(['/ip4/0.0.0.0/tcp/6000'])
  })

  it('reads sizes and durations in YAML as strings and as numbers (bytes, seconds)', () => {
    expect(parse([], { file: yaml('cache-size: 20GiB\ntag-ttl: 10m\nupload-limit: 50MB\n') })).toMatchObject({ cacheSize: 20 * 2 ** 30, tagTtlMs: 600_000, p2p: { uploadLimit: 50e6 } })
    expect(parse([], { file: yaml('cache-size: 1048576\ntag-ttl: 45\nmax-uploads: 3\ncache-high-watermark: 0.9\n') })).toMatchObject({
      cacheSize: 1_048_576,
      tagTtlMs: 45_000,
      highWatermark: 0.9,
      p2p: { maxUploads: 3 },
    })
  })

  it('names the bad key as the user wrote it, for each source', () => {
    expect(configErrorMessage(() => parse(['--cache-size', 'big']))).toMatch(/^invalid --cache-size: "big" is not a size/)
    expect(configErrorMessage(() => parse([], { env: { POLLEN_CACHE_SIZE: 'big' } }))).toMatch(/^invalid POLLEN_CACHE_SIZE: "big" is not a size/)
    expect(configErrorMessage(() => parse([], { file: yaml('cache-size: big\n') }))).toMatch(/^invalid cache-size in \/etc\/pollen\/agent.yaml: "big" is not a size/)
    expect(configErrorMessage(() => parse([], { file: yaml('log-level: loud\n') }))).toMatch(/^invalid log-level in \/etc\/pollen\/agent.yaml: unknown level "loud"/)
    expect(configErrorMessage(() => parse([], { env: { POLLEN_LISTEN: '0.0.0.0:5050' } }))).toMatch(/^invalid POLLEN_LISTEN: 0.0.0.0:5050 is reachable from other hosts/)
  })

  it('refuses an unknown key in the file and an unknown POLLEN_ variable, but not POLLEN_JOIN_TOKEN', () => {
    expect(configErrorMessage(() => parse([], { file: yaml('cache_size: 1GiB\n') }))).toBe('invalid cache_size in /etc/pollen/agent.yaml: unknown key (did you mean cache-size?)')
    expect((parse([], { env: { POLLEN_CACHESIZE: '1GiB' } }) as { configWarnings?: string[] }).configWarnings).toEqual(['ignoring POLLEN_CACHESIZE: no option has this name (did you mean POLLEN_CACHE_SIZE?)'])
    expect(parse([], { env: { POLLEN_JOIN_TOKEN: 'pjt_x', POLLEN_CONFIG: PATH } }).joinTokenFile).toBeUndefined()
  })

  it('reports invalid YAML on one line with its line number', () => {
    expect(configErrorMessage(() => parse([], { file: yaml('seed: http://seed:5000\nseed: http://other:5000\n') }))).toBe('invalid /etc/pollen/agent.yaml: line 2, column 1: Map keys must be unique')
  })

  it('takes --oidc-token-file from POLLEN_OIDC_TOKEN_FILE like any option, the flag winning', () => {
    const env = { POLLEN_OIDC_TOKEN_FILE: '/var/run/secrets/token' }
    expect(parse([], { env })).toMatchObject({ oidcTokenFile: '/var/run/secrets/token', origins: { 'oidc-token-file': { kind: 'env', name: 'POLLEN_OIDC_TOKEN_FILE' } } })
    expect(parse(['--oidc-token-file', '/t'], { env }).oidcTokenFile).toBe('/t')
    expect(parse([], { env: { POLLEN_OIDC_TOKEN_FILE: '' } }).oidcTokenFile).toBeUndefined()
  })

  it('lets POLLEN_JOIN_TOKEN, being environment, win over join-token-file from the file only', () => {
    const file = yaml('join-token-file: /etc/pollen/join\n')
    const env = { POLLEN_JOIN_TOKEN: 'pjt_secret' }
    expect(parse([], { file }).joinTokenFile).toBe('/etc/pollen/join')
    expect(parse([], { file, env })).toMatchObject({ joinTokenFile: undefined, origins: undefined })
    expect(parse(['--join-token-file', '/j'], { file, env }).joinTokenFile).toBe('/j')
    expect(parse([], { file, env: { ...env, POLLEN_JOIN_TOKEN_FILE: '/e' } }).joinTokenFile).toBe('/e')
  })

  it('answers --help without looking at the environment or the file', () => {
    expect(parseAgentArgs(['--help'], { env: { POLLEN_TYPO: '1' }, file: yaml('nonsense: [') })).toBe('help')
  })

  it('gives configure-containerd the agent options from the file and environment, its own from flags only', () => {
    const config = parseConfigureArgs(['--all'], { file: yaml('listen: 127.0.0.1:6060\n'), env: {} }) as ConfigureContainerdConfig
    expect(config.agent.listen).toEqual({ host: '127.0.0.1', port: 6060 })
    expect(configErrorMessage(() => parseConfigureArgs(['--all'], { file: yaml('registry: [docker.io]\n') }))).toMatch(/^invalid registry in .*: --registry can only be given on the command line/)
    expect(configErrorMessage(() => parseConfigureArgs(['--all'], { env: { POLLEN_HOSTS_DIR: '/x' } }))).toMatch(/^invalid POLLEN_HOSTS_DIR: --hosts-dir can only be given on the command line/)
  })
})
