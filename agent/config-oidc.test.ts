import { describe, expect, it } from 'vitest'
import { AGENT_HELP, ConfigError, parseAgentArgs, type AgentConfig } from './config.js'

const parse = (...argv: string[]): AgentConfig => parseAgentArgs(argv) as AgentConfig

describe('agent --oidc-token-file', () => {
  it('is unset unless given, and keeps the path as given beside a join token file', () => {
    expect(parse().oidcTokenFile).toBeUndefined()
    const config = parse('--seed', 'http://seed:5000', '--oidc-token-file', '/var/run/secrets/pollen/token', '--join-token-file', '/etc/pollen/join')
    expect(config.oidcTokenFile).toBe('/var/run/secrets/pollen/token')
    expect(config.joinTokenFile).toBe('/etc/pollen/join')
  })

  it('refuses an empty path, naming the flag', () => {
    expect(() => parse('--oidc-token-file', '')).toThrow(ConfigError)
    expect(() => parse('--oidc-token-file', '')).toThrow(/oidc-token-file/)
  })

  it('is documented in --help with its environment variable', () => {
    expect(AGENT_HELP).toContain('--oidc-token-file FILE')
    expect(AGENT_HELP).toContain('POLLEN_OIDC_TOKEN_FILE')
  })
})
