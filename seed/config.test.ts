import { describe, expect, it } from 'vitest'
import { ConfigError, parseHostPort, parseSeedArgs } from './config.js'

describe('parseSeedArgs', () => {
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
    })
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
