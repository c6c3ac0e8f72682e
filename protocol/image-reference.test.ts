import { describe, expect, it } from 'vitest'
import { DigestInvalidError, NameInvalidError, ReferenceInvalidError } from './errors.js'
import { parseImageReference } from './image-reference.js'

const DIGEST = `sha256:${'ab'.repeat(32)}`

describe('parseImageReference', () => {
  it('reads a registry host with a port, a path and a tag', () => {
    const ref = parseImageReference('127.0.0.1:5055/team/app:v1')
    expect(ref.repository).toEqual({ ns: '127.0.0.1:5055', name: 'team/app' })
    expect(ref.reference).toEqual({ kind: 'tag', tag: 'v1' })
    expect(ref.text).toBe('127.0.0.1:5055/team/app:v1')
  })

  it('means Docker Hub and library/ for a bare name, and latest for no tag', () => {
    expect(parseImageReference('alpine').text).toBe('docker.io/library/alpine:latest')
    expect(parseImageReference('docker.io/library/alpine:3.20').text).toBe('docker.io/library/alpine:3.20')
    expect(parseImageReference('index.docker.io/bitnami/redis').text).toBe('docker.io/bitnami/redis:latest')
    expect(parseImageReference('team/app:v2', 'ghcr.io').text).toBe('ghcr.io/team/app:v2')
  })

  it('takes the first component as a host only when it has a dot or a colon or is localhost', () => {
    expect(parseImageReference('localhost/app').repository.ns).toBe('localhost')
    expect(parseImageReference('ghcr.io/org/app').repository.ns).toBe('ghcr.io')
    expect(parseImageReference('org/app').repository).toEqual({ ns: 'docker.io', name: 'org/app' })
  })

  it('prefers the digest over a tag', () => {
    const ref = parseImageReference(`ghcr.io/org/app:v1@${DIGEST}`)
    expect(ref.reference).toMatchObject({ kind: 'digest' })
    expect(ref.text).toBe(`ghcr.io/org/app@${DIGEST}`)
  })

  it.each([
    ['', NameInvalidError],
    ['Team/App', NameInvalidError],
    ['127.0.0.1:5055/', NameInvalidError],
    ['host:99999/app', NameInvalidError],
    ['app:', ReferenceInvalidError],
    ['app:bad tag', ReferenceInvalidError],
    ['app@sha256:123', DigestInvalidError],
  ] as const)('rejects %j', (input, error) => {
    expect(() => parseImageReference(input)).toThrow(error)
  })
})
