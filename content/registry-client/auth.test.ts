import { ForeignRealmError } from '../../protocol/errors.js'
import { describe, expect, it } from 'vitest'
import { checkRealm, parseTokenResponse } from './auth.js'
import { InsecureRealmError } from './errors.js'
import { parseRetryAfter, backoffDelay } from './retry.js'

const hub = new URL('https://registry-1.docker.io')

describe('checkRealm', () => {
  it('accepts the upstream own host and listed realm hosts, default ports included', () => {
    expect(checkRealm('https://registry-1.docker.io/token', hub, 'docker.io', []).host).toBe('registry-1.docker.io')
    expect(checkRealm('https://auth.docker.io/token?x=1', hub, 'docker.io', ['auth.docker.io']).href).toBe('https://auth.docker.io/token?x=1')
    expect(checkRealm('https://auth.docker.io:443/token', hub, 'docker.io', ['AUTH.docker.io']).host).toBe('auth.docker.io')
    expect(checkRealm('https://auth.docker.io/token', hub, 'docker.io', ['auth.docker.io:443']).host).toBe('auth.docker.io')
    expect(checkRealm('http://127.0.0.1:5001/t', new URL('http://127.0.0.1:5000'), '127.0.0.1:5000', ['127.0.0.1:5001']).port).toBe('5001')
  })

  it('refuses a realm on another host, a look-alike host, or an unlisted port of a listed host with ForeignRealmError', () => {
    for (const realm of ['https://evil.example/token', 'https://auth.docker.io.evil.example/token', 'https://registry-1.docker.io.evil.example/token']) {
      expect(() => checkRealm(realm, hub, 'docker.io', ['auth.docker.io'])).toThrow(ForeignRealmError)
    }
    expect(() => checkRealm('https://auth.internal:9000/token', hub, 'docker.io', ['auth.internal:8443'])).toThrow(ForeignRealmError)
  })

  it("trusts the upstream's own host name on another port, and every port of a listed name without one", () => {
    expect(checkRealm('https://registry-1.docker.io:8443/token', hub, 'docker.io', []).port).toBe('8443')
    expect(checkRealm('https://auth.internal:9000/token', hub, 'docker.io', ['auth.internal']).port).toBe('9000')
  })

  it('refuses a plain-http realm for an https upstream, even on its own host', () => {
    expect(() => checkRealm('http://registry-1.docker.io/token', hub, 'docker.io', [])).toThrow(InsecureRealmError)
    expect(() => checkRealm('http://auth.docker.io/token', hub, 'docker.io', ['auth.docker.io'])).toThrow(InsecureRealmError)
  })

  it('refuses realms that are not http(s) URLs or carry user info', () => {
    for (const realm of ['not a url', 'file:///etc/passwd', 'ftp://registry-1.docker.io/t', 'https://u:p@registry-1.docker.io/t']) {
      expect(() => checkRealm(realm, hub, 'docker.io', [])).toThrow(expect.objectContaining({ name: 'UpstreamUnauthorizedError' }))
    }
  })
})

describe('parseTokenResponse', () => {
  it('reads token or access_token and expires_in, defaulting to 60 s', () => {
    expect(parseTokenResponse(Buffer.from('{"token":"a","expires_in":300}'))).toEqual({ token: 'a', lifetimeMs: 300_000 })
    expect(parseTokenResponse(Buffer.from('{"access_token":"b"}'))).toEqual({ token: 'b', lifetimeMs: 60_000 })
    expect(parseTokenResponse(Buffer.from('{"token":"","access_token":"c","expires_in":-5}'))).toEqual({ token: 'c', lifetimeMs: 60_000 })
    expect(parseTokenResponse(Buffer.from('{"token":"d","expires_in":1e12}'))?.lifetimeMs).toBe(3_600_000)
  })

  it('rejects bodies without a header-safe token', () => {
    for (const body of ['', 'null', '[]', '{"token":5}', '{"token":"a\\r\\nX-Injected: 1"}', '{"token":"has space"}']) {
      expect(parseTokenResponse(Buffer.from(body))).toBeUndefined()
    }
  })
})

describe('retry timing', () => {
  it('reads Retry-After as seconds or an HTTP-date, and ignores junk', () => {
    const now = Date.parse('2025-01-01T00:00:00Z')
    expect(parseRetryAfter('3', now)).toBe(3000)
    expect(parseRetryAfter('Wed, 01 Jan 2025 00:00:07 GMT', now)).toBe(7000)
    expect(parseRetryAfter('Tue, 31 Dec 2024 00:00:00 GMT', now)).toBe(0)
    expect(parseRetryAfter('soon', now)).toBeUndefined()
    expect(parseRetryAfter('-1', now)).toBeUndefined()
    expect(parseRetryAfter(undefined, now)).toBeUndefined()
  })

  it('backs off exponentially with jitter between half and all of 200·2ⁿ ms', () => {
    expect([0, 1, 2].map((n) => backoffDelay(n, 200, () => 0))).toEqual([100, 200, 400])
    expect([0, 1, 2].map((n) => backoffDelay(n, 200, () => 1))).toEqual([200, 400, 800])
  })
})
