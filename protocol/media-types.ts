import { parseDigest } from './digest.js'
import { ManifestInvalidError, PollenError } from './errors.js'

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json'
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json'
export const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json'

/** Manifest media types Pollen serves, most specific first (the `Accept` we send upstream). */
export const MANIFEST_MEDIA_TYPES = [OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST] as const
export type ManifestMediaType = (typeof MANIFEST_MEDIA_TYPES)[number]

const INDEX_TYPES = new Set<string>([OCI_INDEX, DOCKER_MANIFEST_LIST])

/** Upper bound on a manifest body; distribution uses 4 MiB. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024

export class UnsupportedMediaTypeError extends PollenError {
  constructor(mediaType: string) {
    super('UnsupportedMediaTypeError', 'UNSUPPORTED', `manifest media type "${mediaType.slice(0, 100)}" is not supported`)
  }
}

export function isManifestMediaType(value: string): value is ManifestMediaType {
  return (MANIFEST_MEDIA_TYPES as readonly string[]).includes(value)
}

export function isIndexMediaType(value: string): boolean {
  return INDEX_TYPES.has(value)
}

/** Strips parameters (`; charset=utf-8`) and case from a Content-Type value. */
export function baseMediaType(contentType: string): string {
  return (contentType.split(';')[0] ?? '').trim().toLowerCase()
}

/** A descriptor referenced from a manifest. */
export interface Descriptor {
  mediaType: string
  digest: string
  size: number
}

export interface ParsedManifest {
  mediaType: ManifestMediaType
  /** Blobs (config and layers) or child manifests (for an index). */
  references: Descriptor[]
}

/**
 * Checks that `body` is a manifest of `contentType` and that its body does not
 * contradict that type. Returns the media type and referenced descriptors.
 * Throws UnsupportedMediaTypeError for other types and ManifestInvalidError for a
 * body that is not JSON, lacks required fields, names a different `mediaType`,
 * or has the other kind's fields (an index with `layers`, an image with `manifests`).
 */
export function parseManifest(body: Uint8Array, contentType: string): ParsedManifest {
  let mediaType = baseMediaType(contentType)
  if (body.byteLength > MAX_MANIFEST_BYTES) throw new ManifestInvalidError(`manifest is larger than ${MAX_MANIFEST_BYTES} bytes`)
  let doc: unknown
  try {
    doc = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'))
  } catch {
    throw new ManifestInvalidError('manifest is not valid JSON')
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new ManifestInvalidError('manifest is not a JSON object')
  const m = doc as Record<string, unknown>
  if (typeof m.mediaType === 'string') {
    if (mediaType === '' || mediaType === 'application/json' || mediaType === 'application/octet-stream') mediaType = m.mediaType
    else if (m.mediaType !== mediaType) {
      throw new ManifestInvalidError(`manifest body says mediaType ${m.mediaType.slice(0, 100)} but was served as ${mediaType}`)
    }
  }
  if (!isManifestMediaType(mediaType)) throw new UnsupportedMediaTypeError(mediaType)
  if (m.schemaVersion !== 2) throw new ManifestInvalidError('manifest schemaVersion must be 2')
  if (INDEX_TYPES.has(mediaType)) {
    if ('layers' in m || 'config' in m) throw new ManifestInvalidError(`an index (${mediaType}) must not have layers or config`)
    return { mediaType, references: descriptors(m.manifests, 'manifests') }
  }
  if ('manifests' in m) throw new ManifestInvalidError(`an image manifest (${mediaType}) must not have manifests`)
  const config = descriptors([m.config], 'config')
  return { mediaType, references: [...config, ...descriptors(m.layers, 'layers')] }
}

function descriptors(value: unknown, field: string): Descriptor[] {
  if (!Array.isArray(value)) throw new ManifestInvalidError(`manifest field ${field} must be an array`)
  return value.map((d: unknown) => {
    if (d === null || typeof d !== 'object') throw new ManifestInvalidError(`manifest ${field} entry is not an object`)
    const r = d as Record<string, unknown>
    if (typeof r.mediaType !== 'string' || typeof r.digest !== 'string' || typeof r.size !== 'number' || !Number.isSafeInteger(r.size) || r.size < 0) {
      throw new ManifestInvalidError(`manifest ${field} entry needs mediaType, digest and a non-negative size`)
    }
    try {
      parseDigest(r.digest)
    } catch (err) {
      throw new ManifestInvalidError(`manifest ${field} entry has a bad digest: ${(err as Error).message}`)
    }
    return { mediaType: r.mediaType, digest: r.digest, size: r.size }
  })
}

/**
 * Reduces a client's `Accept` header to the manifest types Pollen serves that it names, in
 * our canonical order, joined with ", ". Returns undefined when the header is absent, names
 * a wildcard, names none of them, or names all of them (all mean: ask for every type).
 */
export function normaliseManifestAccept(header: string | undefined): string | undefined {
  if (header === undefined) return undefined
  const named = new Set(header.split(',').map((part) => baseMediaType(part)))
  if (named.has('*/*') || named.has('application/*')) return undefined
  const accepted = MANIFEST_MEDIA_TYPES.filter((t) => named.has(t))
  if (accepted.length === 0 || accepted.length === MANIFEST_MEDIA_TYPES.length) return undefined
  return accepted.join(', ')
}
