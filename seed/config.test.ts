import { describe, expect, it } from 'vitest'
import { ConfigError, SEED_HELP, parseHostPort, parseSeedArgs, parseSeedCommand } from './config.js'

describe('parseSeedArgs', () => {
  it('reads the fan-out bounds and refuses a fractional, negative or zero child count', () => {
    const config = parseSeedArgs(['--fanout-direct', '0', '--fanout-children', '4'])
    if (config === 'help') throw new Error('unexpected help')
    expect([config.fanoutDirect, config.fanoutChildren]).toEqual([0, 4])
    expect(() => parseSeedArgs(['--fanout-direct', '1.5'])).toThrow(/fanout-direct.*whole number/)
    expect(() => parseSeedArgs(['--fanout-direct=-1'])).toThrow(/whole number/)
    expect(() => parseSeedArgs(['--fanout-children', '0'])).toThrow(/fanout-children.*at least 1/)
  })

  it('reads a cache limit with its watermarks, and runs without one by default', () => {
    const config = parseSeedArgs(['--cache-size', '2GiB', '--cache-high-watermark', '0.9'])
    if (config === 'help') throw new Error('unexpected help')
    expect(config.cache).toEqual({ sizeBytes: 2 * 1024 ** 3, highWatermark: 0.9, lowWatermark: 0.7 })
    expect((parseSeedArgs([]) as { cache?: unknown }).cache).toBeUndefined()
    expect(() => parseSeedArgs(['--cache-size', '0'])).toThrow(/cache-size.*larger than 0/)
    expect(() => parseSeedArgs(['--cache-size', 'lots'])).toThrow(/cache-size/)
    expect(() => parseSeedArgs(['--cache-low-watermark', '0.5'])).toThrow(/cache-low-watermark.*needs --cache-size/)
    expect(() => parseSeedArgs(['--cache-size', '1GiB', '--cache-low-watermark', '0.9'])).toThrow(/must be below --cache-high-watermark/)
    expect(() => parseSeedArgs(['--cache-size', '1GiB', '--cache-high-watermark', '1.5'])).toThrow(/fraction/)
  })

  it('applies the embedded defaults when no flag is given', () => {
    expect(parseSeedArgs([])).toEqual({
      listen: { host: '127.0.0.1', port: 5000 },
      dataDir: './pollen-data/seed',
      upstreams: [{ ns: 'docker.io', url: 'https://registry-1.docker.io', realmHosts: ['auth.docker.io'] }],
      credentialsFile: undefined,
      metricsListen: undefined,
      tagTtlMs: 30_000,
      defaultNs: 'docker.io',
      logLevel: 'info',
      p2pListen: ['/ip4/0.0.0.0/tcp/5001'],
      p2pAnnounce: [],
      keyRotationMs: 24 * 3_600_000,
      tokenTtlMs: 600_000,
      issuer: 'pollen-seed',
      audience: 'pollen',
      requireAdmission: true,
      fanoutDirect: 2,
      fanoutChildren: 1,
    })
  })

  it('parses the admission flags', () => {
    const config = parseSeedArgs(['--key-rotation', '6h', '--token-ttl', '1h', '--issuer', 'seed.example', '--audience', 'edge-fleet'])
    if (config === 'help') throw new Error('unexpected help')
    expect([config.keyRotationMs, config.tokenTtlMs, config.issuer, config.audience]).toEqual([6 * 3_600_000, 3_600_000, 'seed.example', 'edge-fleet'])
  })

  it('parses the OIDC enrollment flags, with the scope defaulting to every repository', () => {
    const base = ['--oidc-issuer', 'https://kubernetes.default.svc', '--oidc-jwks', '/etc/pollen/jwks.json', '--oidc-audience', 'pollen-seed']
    const config = parseSeedArgs(base)
    if (config === 'help') throw new Error('unexpected help')
    expect(config.oidc).toEqual({ issuer: 'https://kubernetes.default.svc', jwks: '/etc/pollen/jwks.json', audience: 'pollen-seed', scope: ['**'], subjects: [] })
    const narrow = parseSeedArgs([
      ...base,
      '--oidc-jwks', 'https://issuer.example/openid/v1/jwks',
      '--oidc-scope', 'team-a/**', '--oidc-scope', 'docker.io/library/*',
      '--oidc-subject', 'system:serviceaccount:pollen:*',
    ])
    if (narrow === 'help') throw new Error('unexpected help')
    expect(narrow.oidc).toMatchObject({ jwks: 'https://issuer.example/openid/v1/jwks', scope: ['team-a/**', 'docker.io/library/*'], subjects: ['system:serviceaccount:pollen:*'] })
    expect((parseSeedArgs([]) as { oidc?: unknown }).oidc).toBeUndefined()
  })

  it('parses repeated upstreams, realm hosts and durations', () => {
    const config = parseSeedArgs([
      '--upstream', 'docker.io=https://registry-1.docker.io',
      '--upstream', '127.0.0.1:5055=http://127.0.0.1:5055/',
      '--realm-host', '127.0.0.1:5055=auth.internal',
      '--tag-ttl', '2m',
      '--metrics-listen', ':9100',
    ])
    if (config === 'help') throw new Error('unexpected help')
    expect(config.upstreams.map((u) => [u.ns, u.url, u.realmHosts])).toEqual([
      ['docker.io', 'https://registry-1.docker.io', ['auth.docker.io']],
      ['127.0.0.1:5055', 'http://127.0.0.1:5055', ['auth.internal']],
    ])
    expect(config.tagTtlMs).toBe(120_000)
    expect(config.metricsListen).toEqual({ host: '0.0.0.0', port: 9100 })
  })

  it('returns help for --help', () => {
    expect(parseSeedArgs(['--help'])).toBe('help')
  })

  it.each([
    [['--listen', 'nohost'], 'listen'],
    [['--listen', '1.2.3.4:70000'], 'listen'],
    [['--upstream', 'docker.io'], 'upstream'],
    [['--upstream', 'docker.io=ftp://x'], 'upstream'],
    [['--upstream', 'docker.io=https://user:pw@x'], 'upstream'],
    [['--upstream', 'bad host=https://x'], 'upstream'],
    [['--upstream', 'a.io=https://a.io', '--upstream', 'a.io=https://b.io'], 'upstream'],
    [['--realm-host', 'ghcr.io=x'], 'realm-host'],
    [['--tag-ttl', 'soon'], 'tag-ttl'],
    [['--log-level', 'loud'], 'log-level'],
    [['--p2p-listen', '0.0.0.0:5001'], 'p2p-listen'],
    [['--no-such-flag'], 'arguments'],
    [['--key-rotation', '0s'], 'key-rotation'],
    [['--key-rotation', 'daily'], 'key-rotation'],
    [['--token-ttl', '0'], 'token-ttl'],
    [['--token-ttl', '1h1s'], 'token-ttl'],
    [['--token-ttl', '2h'], 'token-ttl'],
    [['--issuer', ''], 'issuer'],
    [['--audience', 'two words'], 'audience'],
    [['--oidc-jwks', 'f', '--oidc-audience', 'a'], 'oidc-issuer'],
    [['--oidc-issuer', 'https://i', '--oidc-audience', 'a'], 'oidc-jwks'],
    [['--oidc-issuer', 'https://i', '--oidc-jwks', 'f'], 'oidc-audience'],
    [['--oidc-scope', '**'], 'oidc-scope'],
    [['--oidc-subject', 'system:*'], 'oidc-subject'],
    [['--oidc-issuer', 'https://i', '--oidc-jwks', 'http://issuer.example/jwks', '--oidc-audience', 'a'], 'oidc-jwks'],
    [['--oidc-issuer', 'https://i', '--oidc-jwks', 'https://u:p@issuer.example/jwks', '--oidc-audience', 'a'], 'oidc-jwks'],
    [['--oidc-issuer', 'https://i', '--oidc-jwks', 'f', '--oidc-audience', 'two words'], 'oidc-audience'],
    [['--oidc-issuer', 'https://i', '--oidc-jwks', 'f', '--oidc-audience', 'a', '--oidc-scope', 'Bad//x'], 'oidc-scope'],
    [['--oidc-issuer', 'https://i', '--oidc-jwks', 'f', '--oidc-audience', 'a', '--oidc-subject', ''], 'oidc-subject'],
  ])('refuses %j with a ConfigError naming --%s', (argv, key) => {
    try {
      parseSeedArgs(argv)
      expect.unreachable()
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError)
      expect((err as ConfigError).key).toBe(key)
    }
  })

  it('parses bracketed IPv6 listen addresses', () => {
    expect(parseHostPort('listen', '[::1]:5000')).toEqual({ host: '::1', port: 5000 })
  })
})

describe('parseSeedCommand', () => {
  const PEER = '12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA'

  const refusal = (argv: string[]): ConfigError => {
    try {
      parseSeedCommand(argv)
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError)
      return err as ConfigError
    }
    throw new Error(`${JSON.stringify(argv)} was accepted`)
  }

  it('runs the seed when no command is given', () => {
    const cmd = parseSeedCommand(['--listen', ':5000', '--token-ttl', '5m'])
    if (cmd === 'help' || cmd.kind !== 'serve') throw new Error(`unexpected ${JSON.stringify(cmd)}`)
    expect(cmd.config.tokenTtlMs).toBe(300_000)
  })

  it('applies the join-token create defaults', () => {
    expect(parseSeedCommand(['join-token', 'create', '--data', '/d'])).toEqual({ kind: 'join-token-create', dataDir: '/d', ttlMs: 24 * 3_600_000, uses: 1, scope: ['**'] })
  })

  it('parses join-token create with ttl, unlimited uses and several scopes', () => {
    expect(parseSeedCommand(['join-token', 'create', '--data', '/d', '--ttl', '2h', '--uses', 'unlimited', '--scope', 'team-a/**', '--scope', 'docker.io/library/*'])).toEqual({
      kind: 'join-token-create',
      dataDir: '/d',
      ttlMs: 2 * 3_600_000,
      uses: Infinity,
      scope: ['team-a/**', 'docker.io/library/*'],
    })
    expect(parseSeedCommand(['join-token', 'create', '--data', '/d', '--uses', '5'])).toMatchObject({ uses: 5 })
  })

  it('parses join-token list and revoke', () => {
    expect(parseSeedCommand(['join-token', 'list', '--data', '/d'])).toEqual({ kind: 'join-token-list', dataDir: '/d' })
    expect(parseSeedCommand(['join-token', 'revoke', '--data', '/d', '0123456789abcdef'])).toEqual({ kind: 'join-token-revoke', dataDir: '/d', id: '0123456789abcdef' })
  })

  it('parses revoke with and without a reason', () => {
    expect(parseSeedCommand(['revoke', '--data', '/d', PEER])).toEqual({ kind: 'revoke', dataDir: '/d', peerId: PEER })
    expect(parseSeedCommand(['revoke', PEER, '--data', '/d', '--reason', 'node stolen'])).toEqual({ kind: 'revoke', dataDir: '/d', peerId: PEER, reason: 'node stolen' })
  })

  it('returns help for --help on any command', () => {
    for (const argv of [['--help'], ['join-token', '--help'], ['join-token', 'create', '-h'], ['join-token', 'list', '--help'], ['revoke', '--help']]) {
      expect(parseSeedCommand(argv)).toBe('help')
    }
  })

  it.each([
    [['join-token', 'create'], 'data'],
    [['join-token', 'create', '--data', '/d', '--ttl', 'soon'], 'ttl'],
    [['join-token', 'create', '--data', '/d', '--ttl', '0s'], 'ttl'],
    [['join-token', 'create', '--data', '/d', '--ttl', '400d'], 'ttl'],
    [['join-token', 'create', '--data', '/d', '--uses', '0'], 'uses'],
    [['join-token', 'create', '--data', '/d', '--uses', '1.5'], 'uses'],
    [['join-token', 'create', '--data', '/d', '--uses', 'many'], 'uses'],
    [['join-token', 'create', '--data', '/d', '--scope', 'team-a//x'], 'scope'],
    [['join-token', 'create', '--data', '/d', '--scope', 'Team-A/**'], 'scope'],
    [['join-token', 'create', '--data', '/d', '--scope', 'docker.*/x'], 'scope'],
    [['join-token', 'create', '--data', '/d', '--listen', ':5000'], 'arguments'],
    [['join-token', 'list'], 'data'],
    [['join-token', 'list', '--data', '/d', 'extra'], 'arguments'],
    [['join-token', 'revoke', '--data', '/d'], 'id'],
    [['join-token', 'revoke', '--data', '/d', 'not-an-id'], 'id'],
    [['join-token', 'revoke', '--data', '/d', '0123456789abcdef', 'fedcba9876543210'], 'id'],
    [['join-token', 'revoke', '0123456789abcdef'], 'data'],
    [['join-token'], 'command'],
    [['join-token', 'delete'], 'command'],
    [['revoke', '--data', '/d'], 'peer-id'],
    [['revoke', '--data', '/d', 'QmNotAPeer'], 'peer-id'],
    [['revoke', '--data', '/d', PEER, '--reason', 'two\nlines'], 'reason'],
    [['revoke', PEER], 'data'],
    [['serve-please'], 'command'],
  ])('refuses %j with a ConfigError naming %s', (argv, key) => {
    expect(refusal(argv).key).toBe(key)
  })

  it('never echoes a join token given where an id or PeerId belongs', () => {
    const token = `pjt_${'A'.repeat(43)}`
    for (const argv of [['join-token', 'revoke', '--data', '/d', token], ['revoke', '--data', '/d', token], ['join-token', 'list', '--data', '/d', token]]) {
      expect(refusal(argv).message).not.toContain(token)
    }
  })

  it('documents every flag and command in the help', () => {
    for (const word of ['--key-rotation', '--token-ttl', '--issuer', '--audience', '--oidc-issuer', '--oidc-jwks', '--oidc-audience', '--oidc-scope', '--oidc-subject', 'join-token create', 'join-token list', 'join-token revoke', 'revoke PEERID', '--ttl', '--uses', '--scope', '--reason']) {
      expect(SEED_HELP).toContain(word)
    }
  })
})
