import { describe, expect, it } from 'vitest'
import { DigestInvalidError, NameInvalidError, ReferenceInvalidError, UnsupportedDigestAlgorithmError } from './errors.js'
import { parseRegistryPath } from './registry-path.js'
import { UnitParseError, parseDuration, parseSize } from './units.js'

const D = `sha256:${'a'.repeat(64)}`

describe('parseRegistryPath', () => {
  it('recognises the base endpoint with and without a trailing slash', () => {
    expect(parseRegistryPath('/v2/', 'docker.io')).toEqual({ kind: 'base' })
    expect(parseRegistryPath('/v2', 'docker.io')).toEqual({ kind: 'base' })
  })

  it('parses manifests by tag with the ns query and Docker Hub normalisation', () => {
    expect(parseRegistryPath('/v2/alpine/manifests/3.20', 'docker.io')).toMatchObject({
      kind: 'manifest',
      repository: { ns: 'docker.io', name: 'library/alpine' },
      reference: { kind: 'tag', tag: '3.20' },
    })
    expect(parseRegistryPath('/v2/team/app/manifests/v1?ns=ghcr.io', 'docker.io')).toMatchObject({
      repository: { ns: 'ghcr.io', name: 'team/app' },
    })
  })

  it('parses blobs by digest, with names that contain "blobs" and "manifests"', () => {
    expect(parseRegistryPath(`/v2/a/blobs/manifests/blobs/${D}?ns=127.0.0.1:5000`, 'docker.io')).toMatchObject({
      kind: 'blob',
      repository: { ns: '127.0.0.1:5000', name: 'a/blobs/manifests' },
      digest: { value: D },
    })
  })

  it('returns unknown for paths outside the pull API', () => {
    for (const p of ['/', '/v1/x', '/v2/x/tags/list', '/v2/x/blobs/uploads/', '/metrics']) {
      expect(parseRegistryPath(p, 'docker.io').kind).toBe('unknown')
    }
  })

  it.each([
    [`/v2/../../etc/blobs/${D}`, NameInvalidError],
    [`/v2/%2e%2e/blobs/${D}`, NameInvalidError],
    [`/v2/a/blobs/${D}?ns=../../x`, NameInvalidError],
    [`/v2/a/blobs/${D}?ns=evil.io/path`, NameInvalidError],
    ['/v2/a/blobs/sha256:ABC', DigestInvalidError],
    [`/v2/a/blobs/${D.toUpperCase().replace('SHA', 'sha')}`, DigestInvalidError],
    [`/v2/a/blobs/md5:${'a'.repeat(32)}`, UnsupportedDigestAlgorithmError],
    ['/v2/a/manifests/-bad', ReferenceInvalidError],
    [`/v2/${'a/'.repeat(1100)}x/manifests/latest`, NameInvalidError],
  ])('rejects %s', (target, error) => {
    expect(() => parseRegistryPath(target, 'docker.io')).toThrow(error)
  })
})

describe('parseDuration and parseSize', () => {
  it('parses human-readable durations', () => {
    expect(parseDuration('500ms')).toBe(500)
    expect(parseDuration('30s')).toBe(30_000)
    expect(parseDuration('10m')).toBe(600_000)
    expect(parseDuration('1h30m')).toBe(5_400_000)
    expect(parseDuration('15')).toBe(15_000)
    expect(parseDuration('0s')).toBe(0)
  })

  it('parses human-readable sizes', () => {
    expect(parseSize('1048576')).toBe(1048576)
    expect(parseSize('512MiB')).toBe(512 * 2 ** 20)
    expect(parseSize('20GiB')).toBe(20 * 2 ** 30)
    expect(parseSize('1.5GB')).toBe(1.5e9)
  })

  it.each(['', 'abc', '10 parsecs', '5x', '-1s', 'm'])('rejects %j', (input) => {
    expect(() => parseDuration(input)).toThrow(UnitParseError)
    expect(() => parseSize(input)).toThrow(UnitParseError)
  })
})
