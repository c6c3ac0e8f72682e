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
