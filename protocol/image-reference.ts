import { parseDigest } from './digest.js'
import { NameInvalidError, ReferenceInvalidError } from './errors.js'
import { DOCKER_HUB, isTag, parseReference, parseRegistryHost, parseRepository, type Reference, type Repository } from './reference.js'

/** An image as people write it: `[host[:port]/]name[:tag][@digest]`, parsed and canonical. */
export interface ImageReference {
  repository: Repository
  /** The digest when one is given (it wins over a tag), else the tag (`latest` when none). */
  reference: Reference
  /** The canonical form: `ns/name:tag` or `ns/name@digest`. */
  text: string
}

const MAX_IMAGE_REFERENCE_LENGTH = 512

/**
 * Parses an image reference the way the Docker CLI does: the first path component is a
 * registry host when it has a `.` or a `:` or is `localhost`; otherwise the image is on
 * `defaultNs` (Docker Hub, where single names get `library/`). The tag defaults to `latest`;
 * with `@digest` the digest is the reference. Throws NameInvalidError for a bad host or name,
 * ReferenceInvalidError for a bad tag, DigestInvalidError / UnsupportedDigestAlgorithmError
 * for a bad digest.
 */
export function parseImageReference(input: string, defaultNs: string = DOCKER_HUB): ImageReference {
  if (input.length === 0 || input.length > MAX_IMAGE_REFERENCE_LENGTH) throw new NameInvalidError('image reference is empty or too long')
  let rest = input
  let digest: string | undefined
  const at = rest.indexOf('@')
  if (at >= 0) {
    digest = parseDigest(rest.slice(at + 1)).value
    rest = rest.slice(0, at)
  }
  let ns = parseRegistryHost(undefined, defaultNs)
  const slash = rest.indexOf('/')
  const first = slash < 0 ? '' : rest.slice(0, slash)
  if (slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    ns = parseRegistryHost(first)
    rest = rest.slice(slash + 1)
  }
  let tag: string | undefined
  const colon = rest.lastIndexOf(':')
  // A colon left of the host split is a port; this one can only be the tag's.
  if (colon >= 0) {
    tag = rest.slice(colon + 1)
    rest = rest.slice(0, colon)
    if (!isTag(tag)) throw new ReferenceInvalidError(`invalid tag "${clip(tag)}" in image reference`)
  }
  const repository = parseRepository(ns, rest)
  const reference = parseReference(digest ?? tag ?? 'latest')
  const text = `${repository.ns}/${repository.name}${reference.kind === 'tag' ? `:${reference.tag}` : `@${reference.digest.value}`}`
  return { repository, reference, text }
}

function clip(input: string): string {
  const cut = input.length > 80 ? `${input.slice(0, 80)}…` : input
  return cut.replace(/[^\x20-\x7e]/g, '?')
}
