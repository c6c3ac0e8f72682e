import { describe, expect, it } from 'vitest'
import { ManifestInvalidError } from './errors.js'
import {
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  OCI_INDEX,
  OCI_MANIFEST,
  UnsupportedMediaTypeError,
  baseMediaType,
  normaliseManifestAccept,
  isIndexMediaType,
  parseManifest,
} from './media-types.js'

const d = (c: string) => `sha256:${c.repeat(64)}`
const desc = (mediaType: string, c: string) => ({ mediaType, digest: d(c), size: 10 })
const image = (mediaType: string, extra: object = {}) =>
  Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, config: desc('cfg', 'a'), layers: [desc('l', 'b')], ...extra }))
const index = (mediaType: string, extra: object = {}) =>
  Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, manifests: [desc(OCI_MANIFEST, 'c')], ...extra }))

describe('parseManifest', () => {
  it.each([OCI_MANIFEST, DOCKER_MANIFEST])('accepts an image manifest of %s and lists config and layers', (mt) => {
    const parsed = parseManifest(image(mt), mt)
    expect(parsed.mediaType).toBe(mt)
    expect(parsed.references.map((r) => r.digest)).toEqual([d('a'), d('b')])
  })

  it.each([OCI_INDEX, DOCKER_MANIFEST_LIST])('accepts an index of %s and lists its children', (mt) => {
    expect(parseManifest(index(mt), `${mt}; charset=utf-8`).references).toHaveLength(1)
    expect(isIndexMediaType(mt)).toBe(true)
  })

  it('refuses an index that has layers', () => {
    expect(() => parseManifest(index(OCI_INDEX, { layers: [] }), OCI_INDEX)).toThrow(ManifestInvalidError)
  })

  it('refuses an image manifest that has manifests', () => {
    expect(() => parseManifest(image(OCI_MANIFEST, { manifests: [] }), OCI_MANIFEST)).toThrow(ManifestInvalidError)
  })

  it('refuses a body whose mediaType contradicts the Content-Type', () => {
    expect(() => parseManifest(image(OCI_MANIFEST), DOCKER_MANIFEST)).toThrow(ManifestInvalidError)
  })

  it('takes the media type from the body when the Content-Type is generic', () => {
    expect(parseManifest(image(OCI_MANIFEST), 'application/json').mediaType).toBe(OCI_MANIFEST)
  })

  it('refuses unsupported media types', () => {
    expect(() => parseManifest(Buffer.from('{"schemaVersion":1}'), 'application/vnd.docker.distribution.manifest.v1+prettyjws')).toThrow(
      UnsupportedMediaTypeError,
    )
  })

  it.each([
    ['not JSON', Buffer.from('{')],
    ['an array', Buffer.from('[]')],
    ['schemaVersion 1', Buffer.from(JSON.stringify({ schemaVersion: 1, mediaType: OCI_MANIFEST, config: desc('x', 'a'), layers: [] }))],
    ['a bad layer digest', Buffer.from(JSON.stringify({ schemaVersion: 2, config: desc('x', 'a'), layers: [{ mediaType: 'x', digest: 'sha256:AB', size: 1 }] }))],
    ['a negative size', Buffer.from(JSON.stringify({ schemaVersion: 2, config: { mediaType: 'x', digest: d('a'), size: -1 }, layers: [] }))],
    ['no layers', Buffer.from(JSON.stringify({ schemaVersion: 2, config: desc('x', 'a') }))],
  ])('refuses %s with ManifestInvalidError', (_what, body) => {
    expect(() => parseManifest(body, OCI_MANIFEST)).toThrow(ManifestInvalidError)
  })

  it('strips parameters from Content-Type values', () => {
    expect(baseMediaType('Application/Vnd.OCI.Image.Index.v1+json ; charset=utf-8')).toBe(OCI_INDEX)
  })
})

describe('normaliseManifestAccept', () => {
  it('means every type when absent, a wildcard, none or all of ours are named', () => {
    expect(normaliseManifestAccept(undefined)).toBeUndefined()
    expect(normaliseManifestAccept('*/*')).toBeUndefined()
    expect(normaliseManifestAccept('application/json')).toBeUndefined()
    expect(normaliseManifestAccept([OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST].join(','))).toBeUndefined()
  })

  it('keeps the named subset in canonical order, ignoring parameters', () => {
    expect(normaliseManifestAccept(`${DOCKER_MANIFEST}; q=0.5, ${OCI_MANIFEST}`)).toBe(`${OCI_MANIFEST}, ${DOCKER_MANIFEST}`)
  })
})
