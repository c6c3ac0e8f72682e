import { describe, expect, it } from 'vitest'
import { NameInvalidError, ReferenceInvalidError, DigestInvalidError } from './errors.js'
import { defaultRegistryUrl, isTag, parseReference, parseRegistryHost, parseRepository } from './reference.js'

describe('parseRegistryHost', () => {
  it('means docker.io when ns is absent, and normalises Docker Hub aliases', () => {
    expect(parseRegistryHost(undefined)).toBe('docker.io')
    expect(parseRegistryHost('')).toBe('docker.io')
    expect(parseRegistryHost('index.docker.io')).toBe('docker.io')
    expect(parseRegistryHost('registry-1.docker.io')).toBe('docker.io')
    expect(parseRegistryHost(undefined, 'ghcr.io')).toBe('ghcr.io')
  })

  it('accepts hosts with ports, IPv4 and bracketed IPv6, and lowercases them', () => {
    expect(parseRegistryHost('127.0.0.1:5055')).toBe('127.0.0.1:5055')
    expect(parseRegistryHost('Registry.Example.com')).toBe('registry.example.com')
    expect(parseRegistryHost('[::1]:5000')).toBe('[::1]:5000')
    expect(parseRegistryHost('localhost')).toBe('localhost')
  })

  it.each(['../etc', 'a/b', 'host:99999', 'host:0', '-bad.io', 'bad-.io', 'a..b', 'http://x', 'x y', 'host:', `${'a'.repeat(256)}`])(
    'rejects %j with NameInvalidError',
    (ns) => expect(() => parseRegistryHost(ns)).toThrow(NameInvalidError),
  )
})

describe('parseRepository', () => {
  it('adds library/ to single-component Docker Hub names only', () => {
    expect(parseRepository('docker.io', 'alpine').name).toBe('library/alpine')
    expect(parseRepository('docker.io', 'bitnami/redis').name).toBe('bitnami/redis')
    expect(parseRepository('ghcr.io', 'alpine').name).toBe('alpine')
  })

  it('accepts the separators the OCI grammar allows', () => {
    for (const n of ['a', 'a.b', 'a_b', 'a__b', 'a-b', 'a---b', 'team-a/app/v2', '0/1/2']) {
      expect(parseRepository('ghcr.io', n).name).toBe(n)
    }
  })

  it.each(['', 'A', 'a/../b', '..', 'a/./b', '/a', 'a/', 'a//b', 'a___b', 'a.-b', '.a', 'a b', 'a%2fb', 'a\u0000b', 'x'.repeat(256)])(
    'rejects %j with NameInvalidError',
    (name) => expect(() => parseRepository('ghcr.io', name)).toThrow(NameInvalidError),
  )
})

describe('parseReference and isTag', () => {
  it('parses tags up to 128 characters', () => {
    expect(parseReference('latest')).toEqual({ kind: 'tag', tag: 'latest' })
    expect(parseReference('_v1.2-rc.3')).toEqual({ kind: 'tag', tag: '_v1.2-rc.3' })
    expect(isTag('a'.repeat(128))).toBe(true)
    expect(isTag('a'.repeat(129))).toBe(false)
  })

  it('parses digests when the reference has a colon', () => {
    const ref = parseReference(`sha256:${'a'.repeat(64)}`)
    expect(ref.kind).toBe('digest')
  })

  it.each(['.hidden', '-dash', 'a/b', '', 'tag with space'])('rejects the tag %j with ReferenceInvalidError', (tag) => {
    expect(() => parseReference(tag)).toThrow(ReferenceInvalidError)
  })

  it('rejects a malformed digest reference with DigestInvalidError', () => {
    expect(() => parseReference('sha256:XYZ')).toThrow(DigestInvalidError)
  })
})

describe('defaultRegistryUrl', () => {
  it('uses Docker Hub\'s API host, plain HTTP on loopback and HTTPS elsewhere', () => {
    expect(defaultRegistryUrl('docker.io')).toBe('https://registry-1.docker.io')
    expect(defaultRegistryUrl('127.0.0.1:5055')).toBe('http://127.0.0.1:5055')
    expect(defaultRegistryUrl('localhost:5000')).toBe('http://localhost:5000')
    expect(defaultRegistryUrl('[::1]:5000')).toBe('http://[::1]:5000')
    expect(defaultRegistryUrl('ghcr.io')).toBe('https://ghcr.io')
    expect(defaultRegistryUrl('127.example.com')).toBe('https://127.example.com')
  })
})
