import type { IncomingMessage } from 'node:http'
import { describe, expect, it } from 'vitest'
import { ConfigError } from '../protocol/config-values.js'
import { MirrorTokenRequiredError, mirrorTokenCheck, parseMirrorToken } from './mirror-token.js'

const TOKEN = '0123456789abcdef0123456789abcdef'
const request = (headers: Record<string, string>): IncomingMessage => ({ headers }) as unknown as IncomingMessage

describe('mirror token', () => {
  it('accepts a long random token and refuses short ones and ones that could break out of hosts.toml', () => {
    expect(parseMirrorToken(`${TOKEN}\n`)).toBe(TOKEN)
    for (const bad of ['short', `${TOKEN}"x`, `${TOKEN}\\`, `abc def ${TOKEN}`, 'x'.repeat(513)]) expect(() => parseMirrorToken(bad), bad).toThrow(ConfigError)
  })

  it('admits a request carrying the token in X-Pollen-Mirror-Token or as a bearer, and refuses the rest with DENIED', async () => {
    let denied = 0
    const check = mirrorTokenCheck(TOKEN, () => denied++)
    await check(request({ 'x-pollen-mirror-token': TOKEN }))
    await check(request({ authorization: `Bearer ${TOKEN}` }))
    const refused: Array<Record<string, string>> = [{}, { 'x-pollen-mirror-token': `${TOKEN}0` }, { authorization: `Basic ${TOKEN}` }, { authorization: 'Bearer ' }]
    for (const headers of refused) {
      const err = await check(request(headers)).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(MirrorTokenRequiredError)
      expect((err as MirrorTokenRequiredError).ociCode).toBe('DENIED')
    }
    expect(denied).toBe(4)
  })
})
