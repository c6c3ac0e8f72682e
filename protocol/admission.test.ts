import { describe, expect, it } from 'vitest'
import {
  ADMISSION_DENIAL_REASONS,
  AdmissionDeniedError,
  MAX_TOKEN_LIFETIME_S,
  ScopePatternInvalidError,
  checkAdmissionTimes,
  parseAdmissionClaims,
  parseScopePattern,
  scopeCovers,
  type AdmissionClaims,
} from './admission.js'

const hub = (name: string) => ({ ns: 'docker.io', name })
const ghcr = (name: string) => ({ ns: 'ghcr.io', name })

function reasonOf(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    if (err instanceof AdmissionDeniedError) return err.reason
    throw err
  }
  return undefined
}

describe('scope patterns', () => {
  it('lets * match exactly one name component', () => {
    expect(scopeCovers(['library/*'], hub('library/alpine'))).toBe(true)
    expect(scopeCovers(['library/*'], hub('library/a/b'))).toBe(false)
    expect(scopeCovers(['library/*'], hub('other/alpine'))).toBe(false)
    expect(scopeCovers(['*/alpine'], hub('library/alpine'))).toBe(true)
  })

  it('lets ** match any number of components, zero included', () => {
    expect(scopeCovers(['team-a/**'], ghcr('team-a/x/y'))).toBe(true)
    expect(scopeCovers(['team-a/**'], ghcr('team-a/x'))).toBe(true)
    expect(scopeCovers(['team-a/**'], ghcr('team-a'))).toBe(true)
    expect(scopeCovers(['team-a/**'], ghcr('team-ab/x'))).toBe(false)
    expect(scopeCovers(['**/base'], ghcr('a/b/c/base'))).toBe(true)
    expect(scopeCovers(['a/**/z'], ghcr('a/z'))).toBe(true)
    expect(scopeCovers(['a/**/z'], ghcr('a/b/c/z'))).toBe(true)
    expect(scopeCovers(['a/**/z'], ghcr('a/b/c/y'))).toBe(false)
  })

  it('lets * inside a component match characters within that component only', () => {
    expect(scopeCovers(['library/alp*'], hub('library/alpine'))).toBe(true)
    expect(scopeCovers(['library/alp*'], hub('library/alp'))).toBe(true)
    expect(scopeCovers(['library/alp*'], hub('library/alpine/x'))).toBe(false)
    expect(scopeCovers(['library/*-base'], hub('library/node-base'))).toBe(true)
    expect(scopeCovers(['library/*-base'], hub('library/node-base2'))).toBe(false)
    expect(scopeCovers(['team-*/app'], ghcr('team-a/app'))).toBe(true)
    expect(scopeCovers(['team-*/app'], ghcr('team-a/b/app'))).toBe(false)
    expect(scopeCovers(['a*b*c'], ghcr('axbybzc'))).toBe(true)
    expect(scopeCovers(['a*b*c'], ghcr('axbybz'))).toBe(false)
  })

  it('stays fast on components made of many stars', () => {
    const started = performance.now()
    expect(scopeCovers([`${'a*'.repeat(60)}b`], ghcr('a'.repeat(200)))).toBe(false)
    expect(performance.now() - started).toBeLessThan(200)
  })

  it('lets ** alone cover every repository on every registry', () => {
    expect(scopeCovers(['**'], hub('library/alpine'))).toBe(true)
    expect(scopeCovers(['**'], { ns: '127.0.0.1:5000', name: 'x/y/z' })).toBe(true)
  })

  it('matches a host-free pattern on every registry', () => {
    expect(scopeCovers(['library/alpine'], hub('library/alpine'))).toBe(true)
    expect(scopeCovers(['library/alpine'], ghcr('library/alpine'))).toBe(true)
  })

  it('matches a pattern with a host only on that registry', () => {
    expect(scopeCovers(['docker.io/library/*'], hub('library/alpine'))).toBe(true)
    expect(scopeCovers(['docker.io/library/*'], ghcr('library/alpine'))).toBe(false)
    expect(scopeCovers(['ghcr.io/**'], ghcr('org/app'))).toBe(true)
    expect(scopeCovers(['localhost/app'], { ns: 'localhost', name: 'app' })).toBe(true)
    expect(scopeCovers(['127.0.0.1:5000/app'], { ns: '127.0.0.1:5000', name: 'app' })).toBe(true)
    expect(scopeCovers(['127.0.0.1:5000/app'], { ns: '127.0.0.1:5001', name: 'app' })).toBe(false)
  })

  it('canonicalises hosts on both sides, like a request ns', () => {
    expect(scopeCovers(['index.docker.io/library/*'], hub('library/alpine'))).toBe(true)
    expect(scopeCovers(['Docker.IO/library/*'], { ns: 'registry-1.docker.io', name: 'library/alpine' })).toBe(true)
  })

  it('matches Docker Hub names in canonical form, with library/', () => {
    expect(scopeCovers(['docker.io/library/alpine'], hub('alpine'))).toBe(true)
    expect(scopeCovers(['docker.io/alpine'], hub('library/alpine'))).toBe(false)
  })

  it('treats a single host-looking component as a name, as Docker does', () => {
    expect(parseScopePattern('localhost')).toEqual({ host: undefined, components: ['localhost'] })
    expect(parseScopePattern('my.app')).toEqual({ host: undefined, components: ['my.app'] })
  })

  it('covers nothing for an invalid repository or an empty ns', () => {
    expect(scopeCovers(['**'], { ns: '', name: 'library/alpine' })).toBe(false)
    expect(scopeCovers(['**'], hub('Library/Alpine'))).toBe(false)
    expect(scopeCovers(['**'], hub('a/../b'))).toBe(false)
    expect(scopeCovers(['**'], { ns: 'bad host', name: 'x' })).toBe(false)
  })

  it('lets a malformed pattern grant nothing while the others still count', () => {
    expect(scopeCovers(['library/../**'], hub('library/alpine'))).toBe(false)
    expect(scopeCovers(['library/../**', 'library/*'], hub('library/alpine'))).toBe(true)
    expect(scopeCovers([], hub('library/alpine'))).toBe(false)
  })

  it('stays fast on patterns made of many **', () => {
    const pattern = `${'**/'.repeat(100)}z`
    const name = `${'a/'.repeat(120)}b`
    const started = performance.now()
    expect(scopeCovers([pattern], ghcr(name))).toBe(false)
    expect(performance.now() - started).toBeLessThan(200)
  })

  it.each([
    ['', 'empty'],
    ['library/', 'trailing slash'],
    ['/library/alpine', 'leading slash'],
    ['library//alpine', 'double slash'],
    ['library/../secret', 'dot-dot'],
    ['library/./alpine', 'dot'],
    ['library/alp**', 'double star inside a component'],
    ['library/***', 'triple star'],
    ['library/Alp*', 'uppercase beside a star'],
    ['library/Alpine', 'uppercase'],
    ['library/al pine', 'space'],
    ['library/alpine:latest', 'tag'],
    ['library/alpine@sha256', 'at sign'],
    ['*.example.com/app', 'glob in host'],
    ['bad_host.com:99999/app', 'invalid host'],
    ['library/-alpine', 'separator first'],
    [`library/${'a'.repeat(600)}`, 'overlong'],
  ])('refuses the malformed pattern %j (%s)', (pattern) => {
    expect(() => parseScopePattern(pattern)).toThrow(ScopePatternInvalidError)
  })

  it('refuses a pattern that is not a string', () => {
    expect(() => parseScopePattern(42)).toThrow(ScopePatternInvalidError)
    expect(() => parseScopePattern(['a'])).toThrow(ScopePatternInvalidError)
  })
})

describe('admission claims', () => {
  const valid: AdmissionClaims = {
    iss: 'https://seed.test',
    aud: 'pollen',
    sub: '12D3KooWexample',
    iat: 1000,
    nbf: 1000,
    exp: 1600,
    jti: 'j-1',
    scope: ['library/*'],
  }

  it('returns a clean copy without unknown claims', () => {
    expect(parseAdmissionClaims({ ...valid, admin: true })).toEqual(valid)
  })

  it('normalises a single-element audience array to its element', () => {
    expect(parseAdmissionClaims({ ...valid, aud: ['pollen'] }).aud).toBe('pollen')
  })

  it('refuses an audience array of other than one element as audience', () => {
    expect(reasonOf(() => parseAdmissionClaims({ ...valid, aud: ['pollen', 'other'] }))).toBe('audience')
    expect(reasonOf(() => parseAdmissionClaims({ ...valid, aud: [] }))).toBe('audience')
  })

  it.each([
    ['iss missing', { iss: undefined }],
    ['jti missing', { jti: undefined }],
    ['jti empty', { jti: '' }],
    ['sub a number', { sub: 7 }],
    ['exp a string', { exp: '1600' }],
    ['iat fractional', { iat: 1000.5 }],
    ['exp before iat', { exp: 900 }],
    ['exp before nbf', { nbf: 1700 }],
    ['lifetime over the maximum', { exp: 1000 + MAX_TOKEN_LIFETIME_S + 1 }],
    ['scope not an array', { scope: 'library/*' }],
    ['scope with a non-string', { scope: [1] }],
    ['scope with a malformed pattern', { scope: ['library/../x'] }],
    ['scope too long', { scope: new Array(65).fill('a') }],
  ])('refuses claims as malformed: %s', (_label, change) => {
    expect(reasonOf(() => parseAdmissionClaims({ ...valid, ...change }))).toBe('malformed')
  })

  it('accepts a lifetime of exactly the maximum', () => {
    expect(parseAdmissionClaims({ ...valid, exp: 1000 + MAX_TOKEN_LIFETIME_S }).exp).toBe(1000 + MAX_TOKEN_LIFETIME_S)
  })

  it('refuses a claims set that is not an object', () => {
    expect(reasonOf(() => parseAdmissionClaims(null))).toBe('malformed')
    expect(reasonOf(() => parseAdmissionClaims([valid]))).toBe('malformed')
  })

  it('checks times with the tolerance and jose boundaries', () => {
    expect(reasonOf(() => checkAdmissionTimes(valid, 1600 + 29, 30))).toBeUndefined()
    expect(reasonOf(() => checkAdmissionTimes(valid, 1600 + 30, 30))).toBe('expired')
    expect(reasonOf(() => checkAdmissionTimes(valid, 1000 - 30, 30))).toBeUndefined()
    expect(reasonOf(() => checkAdmissionTimes(valid, 1000 - 31, 30))).toBe('not-yet-valid')
    expect(reasonOf(() => checkAdmissionTimes({ ...valid, nbf: 900 }, 1000 - 31, 30))).toBe('not-yet-valid')
  })
})

describe('admission refusals', () => {
  it('maps revoked, scope and subject to DENIED and every other reason to UNAUTHORIZED', () => {
    for (const reason of ADMISSION_DENIAL_REASONS) {
      const err = new AdmissionDeniedError(reason, 'x')
      expect(err.name).toBe('AdmissionDeniedError')
      expect(err.code).toBe('AdmissionDeniedError')
      expect(err.ociCode).toBe(reason === 'revoked' || reason === 'scope' || reason === 'subject' ? 'DENIED' : 'UNAUTHORIZED')
      expect(err.message).toContain(`(${reason})`)
    }
  })
})
