import { NameInvalidError } from './errors.js'
import { parseDigest, type Digest } from './digest.js'
import { parseReference, parseRegistryHost, parseRepository, type Reference, type Repository } from './reference.js'

/** A parsed OCI pull-API request path. */
export type RegistryRoute =
  | { kind: 'base' }
  | { kind: 'manifest'; repository: Repository; reference: Reference }
  | { kind: 'blob'; repository: Repository; digest: Digest }
  | { kind: 'unknown' }

const ROUTE = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/
/** Longest request target we parse; longer ones are refused before any regex runs. */
export const MAX_TARGET_LENGTH = 2048

/**
 * Parses a request target such as `/v2/library/alpine/manifests/3.20?ns=docker.io`.
 * `ns` absent means `defaultNs`. Returns `unknown` for paths outside the pull API.
 * Throws NameInvalidError (bad name or ns), DigestInvalidError / UnsupportedDigestAlgorithmError
 * (bad digest) and ReferenceInvalidError (bad tag). Percent-encoded paths are never decoded,
 * so `%2e%2e` cannot smuggle a traversal past the name grammar.
 */
export function parseRegistryPath(target: string, defaultNs: string): RegistryRoute {
  if (target.length > MAX_TARGET_LENGTH) throw new NameInvalidError('request target is too long')
  const q = target.indexOf('?')
  const path = q === -1 ? target : target.slice(0, q)
  const params = new URLSearchParams(q === -1 ? '' : target.slice(q + 1))
  if (path === '/v2' || path === '/v2/') return { kind: 'base' }
  const m = ROUTE.exec(path)
  if (m === null) return { kind: 'unknown' }
  const [, name = '', kind, ref = ''] = m
  const ns = parseRegistryHost(params.get('ns'), defaultNs)
  const repository = parseRepository(ns, name)
  if (kind === 'blobs') return { kind: 'blob', repository, digest: parseDigest(ref) }
  return { kind: 'manifest', repository, reference: parseReference(ref) }
}
