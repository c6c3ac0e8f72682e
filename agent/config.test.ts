import { describe, expect, it } from 'vitest'
import { AGENT_HELP, ConfigError, parseAgentArgs, type AgentConfig } from './config.js'

const parse = (...argv: string[]): AgentConfig => parseAgentArgs(argv) as AgentConfig

describe('agent --revocation-poll', () => {
  it('leaves the poll interval to the default when the flag is absent', () => {
    expect(parse().revocationPollMs).toBeUndefined()
  })

  it('takes a duration of at least one second', () => {
    expect(parse('--revocation-poll', '1s').revocationPollMs).toBe(1000)
    expect(parse('--revocation-poll', '2m').revocationPollMs).toBe(120_000)
  })

  it('refuses an interval under one second, naming the flag', () => {
    expect(() => parse('--revocation-poll', '500ms')).toThrow(ConfigError)
    expect(() => parse('--revocation-poll', '500ms')).toThrow(/revocation-poll/)
  })

  it('is not advertised in --help', () => {
    expect(AGENT_HELP).not.toContain('revocation-poll')
  })
})

describe('agent --listen beyond loopback', () => {
  it('listens on loopback without a mirror token', () => {
    expect(parse('--listen', '127.0.0.1:5050').mirrorTokenFile).toBeUndefined()
    expect(parse('--listen', '[::1]:5050').listen).toEqual({ host: '::1', port: 5050 })
  })

  it('refuses an address other hosts can reach unless --mirror-token-file is given, naming --listen', () => {
    for (const listen of [':5050', '0.0.0.0:5050', '10.0.0.5:5050']) {
      expect(() => parse('--listen', listen)).toThrow(ConfigError)
      expect(() => parse('--listen', listen)).toThrow(/--listen.*mirror-token-file|mirror-token-file/)
      expect(parse('--listen', listen, '--mirror-token-file', '/etc/pollen/mirror-token').mirrorTokenFile).toBe('/etc/pollen/mirror-token')
    }
  })
})
