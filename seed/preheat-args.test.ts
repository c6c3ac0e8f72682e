import { describe, expect, it } from 'vitest'
import { ConfigError } from '../protocol/config-values.js'
import { parsePreheatArgs } from './preheat-args.js'
import { parseSeedCommand } from './config.js'

const DEFAULTS = { issuer: 'pollen-seed', audience: 'pollen' }

describe('pollen-seed preheat arguments', () => {
  it('parses images with the seed, issuer and audience defaults, and every platform', () => {
    const cmd = parseSeedCommand(['preheat', '--data', '/var/lib/seed', 'docker.io/library/alpine:3.20', '127.0.0.1:5055/team/app:v1'])
    expect(cmd).toMatchObject({ kind: 'preheat', dataDir: '/var/lib/seed', seedUrl: 'http://127.0.0.1:5000', issuer: 'pollen-seed', audience: 'pollen', platforms: 'all' })
    if (cmd === 'help' || cmd.kind !== 'preheat') throw new Error('not preheat')
    expect(cmd.images.map((i) => i.text)).toEqual(['docker.io/library/alpine:3.20', '127.0.0.1:5055/team/app:v1'])
  })

  it('takes --seed, --platform (repeatable), --issuer and --audience', () => {
    const cmd = parsePreheatArgs(
      ['--data', 'd', '--seed', 'https://seed.internal:5000/', '--platform', 'linux/arm64/v8', '--platform', 'linux/amd64', '--issuer', 'me', '--audience', 'fleet', 'app'],
      DEFAULTS,
    )
    expect(cmd).toMatchObject({
      seedUrl: 'https://seed.internal:5000',
      issuer: 'me',
      audience: 'fleet',
      platforms: [{ os: 'linux', architecture: 'arm64', variant: 'v8' }, { os: 'linux', architecture: 'amd64' }],
    })
    expect(parsePreheatArgs(['--data', 'd', '--platform', 'all', 'app'], DEFAULTS)).toMatchObject({ platforms: 'all' })
    expect(parsePreheatArgs(['--help'], DEFAULTS)).toBe('help')
  })

  it.each([
    [['app'], /--data: is required/],
    [['--data', 'd'], /give one or more images/],
    [['--data', 'd', 'Bad/Name'], /"Bad\/Name" is not an image reference/],
    [['--data', 'd', '--seed', 'ftp://x', 'app'], /--seed: .* must be http/],
    [['--data', 'd', '--seed', 'http://u:p@x', 'app'], /must not carry credentials/],
    [['--data', 'd', '--platform', 'linux', 'app'], /--platform: "linux" must be all or OS\/ARCH/],
    [['--data', 'd', '--bogus', 'app'], /Unknown option/],
  ])('refuses %j with a ConfigError', (argv, message) => {
    expect(() => parsePreheatArgs(argv, DEFAULTS)).toThrow(ConfigError)
    expect(() => parsePreheatArgs(argv, DEFAULTS)).toThrow(message)
  })
})
