import { describe, expect, it } from 'vitest'
import { parseChallenge, parseChallenges, pickChallenge } from './challenge.js'

const params = (header: string): Record<string, string> | undefined => {
  const c = parseChallenge(header)
  return c === undefined ? undefined : Object.fromEntries(c.params)
}

describe('WWW-Authenticate parsing', () => {
  it('reads a Bearer challenge with realm, service and scope', () => {
    const c = parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"')
    expect(c?.scheme).toBe('bearer')
    expect(Object.fromEntries(c?.params ?? [])).toEqual({
      realm: 'https://auth.docker.io/token',
      service: 'registry.docker.io',
      scope: 'repository:library/alpine:pull',
    })
  })

  it('matches scheme and parameter names case-insensitively and allows spaces around "=" and ","', () => {
    const c = parseChallenge('BEARER Realm = "r" ,  SERVICE=svc')
    expect(c?.scheme).toBe('bearer')
    expect(Object.fromEntries(c?.params ?? [])).toEqual({ realm: 'r', service: 'svc' })
  })

  it('keeps commas inside quotes and unescapes backslashes', () => {
    expect(params('Bearer realm="https://a/t",scope="repository:a:pull,push repository:b:pull",error="say \\"hi\\", \\\\ ok"')).toEqual({
      realm: 'https://a/t',
      scope: 'repository:a:pull,push repository:b:pull',
      error: 'say "hi", \\ ok',
    })
  })

  it('reads Basic with a realm, and several challenges in one value or several headers', () => {
    expect(parseChallenge('Basic realm="Registry Realm"')).toEqual({ scheme: 'basic', params: new Map([['realm', 'Registry Realm']]) })
    expect(parseChallenges('Basic realm="a", Bearer realm="b",service="s"').map((c) => c.scheme)).toEqual(['basic', 'bearer'])
    expect(parseChallenges(['Basic realm="a"', 'Bearer realm="b"']).map((c) => c.scheme)).toEqual(['basic', 'bearer'])
    expect(parseChallenges('Negotiate, Basic').map((c) => c.scheme)).toEqual(['negotiate', 'basic'])
    expect(parseChallenges('Newauth dG9rZW42OA==, Basic realm="x"').map((c) => c.scheme)).toEqual(['newauth', 'basic'])
  })

  it('prefers Bearer over Basic', () => {
    expect(pickChallenge(['Basic realm="a"', 'Bearer realm="b"'])?.scheme).toBe('bearer')
    expect(pickChallenge('Digest nonce="1", Basic realm="a"')?.scheme).toBe('basic')
    expect(pickChallenge('Digest nonce="1"')).toBeUndefined()
  })

  it('returns undefined for junk without throwing', () => {
    for (const junk of ['', '   ', ',,,', '=', '"Bearer"', 'Bearer realm="unterminated', 'Bearer realm="a" service="b"', 'Bearer realm=', 'Bearer junk junk', 'Bearer="x"', 'Bearer realm="\\', '\u0000\u0001']) {
      expect(() => parseChallenge(junk)).not.toThrow()
      const c = parseChallenge(junk)
      if (c !== undefined) expect(c.params.get('realm')).toBeUndefined()
    }
    expect(parseChallenges(undefined)).toEqual([])
    expect(parseChallenges(`Bearer realm="${'a'.repeat(10_000)}"`)).toEqual([])
  })

  it('keeps the challenges before a malformed one', () => {
    expect(parseChallenges('Basic realm="ok", Bearer realm="bro').map((c) => c.scheme)).toEqual(['basic'])
  })

  it('does not let a __proto__ parameter touch any prototype', () => {
    const c = parseChallenge('Bearer __proto__="x",realm="r"')
    expect(c?.params.get('__proto__')).toBe('x')
    expect(({} as Record<string, unknown>).x).toBeUndefined()
  })
})
