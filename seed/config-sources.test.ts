import { describe, expect, it } from 'vitest'
import type { ConfigSources } from '../protocol/config-sources.js'
import { configErrorMessage } from '../test/helpers/config-error.js'
import { SEED_HELP, SERVE_OPTIONS, parseSeedArgs, parseSeedCommand, servesSeed, type SeedConfig } from './config.js'

const PATH = '/etc/pollen/seed.yaml'
const parse = (argv: string[], sources: ConfigSources = {}): SeedConfig => parseSeedArgs(argv, sources) as SeedConfig
const yaml = (text: string): ConfigSources['file'] => ({ path: PATH, text })

describe('seed configuration sources', () => {
  it('takes a scalar option from the flag over the environment over the file over the default', () => {
    const file = yaml('tag-ttl: 3m\n')
    const env = { POLLEN_TAG_TTL: '2m' }
    expect(parse([]).tagTtlMs).toBe(30_000)
    expect(parse([], { file }).tagTtlMs).toBe(180_000)
    expect(parse([], { env, file }).tagTtlMs).toBe(120_000)
    expect(parse(['--tag-ttl', '1m'], { env, file }).tagTtlMs).toBe(60_000)
  })

  it('takes the repeatable --upstream whole from one source, a list in YAML and comma-separated in the environment', () => {
    const file = yaml("upstream:\n  - 'docker.io=https://registry-1.docker.io'\n  - 'ghcr.io=https://ghcr.io'\n")
    const env = { POLLEN_UPSTREAM: 'quay.io=https://quay.io, registry.k8s.io=https://registry.k8s.io' }
    const namespaces = (c: SeedConfig): string[] => c.upstreams.map((u) => u.ns)
    expect(namespaces(parse([]))).toEqual(['docker.io'])
    expect(namespaces(parse([], { file }))).toEqual(['docker.io', 'ghcr.io'])
    expect(namespaces(parse([], { env, file }))).toEqual(['quay.io', 'registry.k8s.io'])
    expect(namespaces(parse(['--upstream', 'gcr.io=https://gcr.io'], { env, file }))).toEqual(['gcr.io'])
  })

  it('reads booleans as true or false, and durations as strings or numbers of seconds', () => {
    expect(parse([], { file: yaml('anonymous-pulls: true\ntoken-ttl: 300\nkey-rotation: 6h\n') })).toMatchObject({ requireAdmission: false, tokenTtlMs: 300_000, keyRotationMs: 6 * 3_600_000 })
    expect(parse([], { env: { POLLEN_ANONYMOUS_PULLS: 'false' }, file: yaml('anonymous-pulls: true\n') }).requireAdmission).toBe(true)
  })

  it('names the bad key as the user wrote it, for each source', () => {
    expect(configErrorMessage(() => parse(['--token-ttl', '2d']))).toMatch(/^invalid --token-ttl: "2d" is longer than/)
    expect(configErrorMessage(() => parse([], { env: { POLLEN_TOKEN_TTL: '2d' } }))).toMatch(/^invalid POLLEN_TOKEN_TTL: "2d" is longer than/)
    expect(configErrorMessage(() => parse([], { file: yaml('token-ttl: 2d\n') }))).toMatch(/^invalid token-ttl in \/etc\/pollen\/seed.yaml: "2d" is longer than/)
    expect(configErrorMessage(() => parse([], { file: yaml("upstream: [ 'docker.io' ]\n") }))).toMatch(/^invalid upstream in \/etc\/pollen\/seed.yaml: "docker.io" must look like NAME=VALUE/)
  })

  it('refuses an unknown key in the file and an unknown POLLEN_ variable', () => {
    expect(configErrorMessage(() => parse([], { file: yaml('upstreams: []\n') }))).toBe('invalid upstreams in /etc/pollen/seed.yaml: unknown key (did you mean upstream?)')
    expect((parse([], { env: { POLLEN_AUDIENCES: 'x' } }) as { configWarnings?: string[] }).configWarnings).toEqual(['ignoring POLLEN_AUDIENCES: no option has this name (did you mean POLLEN_AUDIENCE?)'])
  })

  it('applies the file and the environment to running the seed only', () => {
    const sources = { env: { POLLEN_TAG_TTL: '1m' }, file: yaml('tag-ttl: 2m\n') }
    expect(parseSeedCommand([], sources)).toMatchObject({ kind: 'serve', config: { tagTtlMs: 60_000 } })
    expect([servesSeed([]), servesSeed(['--listen', ':5000']), servesSeed(['join-token', 'list']), servesSeed(['revoke'])]).toEqual([true, true, false, false])
  })
})

describe('seed --help', () => {
  it('documents every option of running the seed', () => {
    const missing = Object.keys(SERVE_OPTIONS).filter((key) => !new RegExp(`(^|[\\s,(])--${key}(?![\\w-])`, 'm').test(SEED_HELP))
    expect(missing).toEqual([])
    expect(SEED_HELP).toMatch(/^\s+-h, --help\s/m)
  })

  it('explains the config file, the environment and their precedence', () => {
    expect(SEED_HELP).toContain('--config FILE')
    expect(SEED_HELP).toMatch(/Flags win over the environment, the environment over\s+the file, the file over the defaults/)
  })
})
