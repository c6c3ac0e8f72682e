import { describe, expect, it } from 'vitest'
import { AGENT_HELP, AGENT_OPTIONS, CONFIGURE_OPTIONS } from './config.js'

/** Options deliberately left out of --help, each with the reason in AGENT_OPTIONS. */
const HIDDEN = ['revocation-poll']

describe('agent --help', () => {
  it('documents every option of pollen-agent and configure-containerd, except the hidden allow-list', () => {
    const options = Object.keys({ ...AGENT_OPTIONS, ...CONFIGURE_OPTIONS })
    const missing = options.filter((key) => !HIDDEN.includes(key) && !new RegExp(`(^|[\\s,(])--${key}(?![\\w-])`, 'm').test(AGENT_HELP))
    expect(missing).toEqual([])
    expect(AGENT_HELP).toMatch(/^\s+-h, --help\s/m)
  })

  it('keeps the hidden options real and really hidden', () => {
    for (const key of HIDDEN) {
      expect(Object.keys(AGENT_OPTIONS)).toContain(key)
      expect(AGENT_HELP).not.toContain(`--${key}`)
    }
  })

  it('explains the config file, the environment and their precedence', () => {
    expect(AGENT_HELP).toContain('--config FILE')
    expect(AGENT_HELP).toContain('POLLEN_CACHE_SIZE')
    expect(AGENT_HELP).toMatch(/Flags win over the environment, the environment over\s+the file, the file over the defaults/)
  })
})
