import { parseDigest, type Digest } from './digest.js'
import { NameInvalidError, ReferenceInvalidError } from './errors.js'

/** The registry that `ns` means when a request carries none. */
export const DOCKER_HUB = 'docker.io'

/** Host names that all mean Docker Hub; they normalise to `docker.io`. */
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io'])

const COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*'
const NAME_GRAMMAR = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`)
const TAG_GRAMMAR = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/
const HOST_LABEL = '(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])'
const HOST_GRAMMAR = new RegExp(`^(?:${HOST_LABEL}(?:\\.${HOST_LABEL})*|\\[[0-9A-Fa-f:.]+\\])(?::[0-9]{1,5})?$`)
/** distribution's limit on a repository name. */
export const MAX_NAME_LENGTH = 255

/** A repository on a specific registry, in canonical form. */
export interface Repository {
  /** Registry host (`docker.io`, `ghcr.io`, `127.0.0.1:5000`), lowercase. */
  readonly ns: string
  /** Repository path, `library/` added for Docker Hub single-component names. */
  readonly name: string
}

export type Reference = { kind: 'tag'; tag: string } | { kind: 'digest'; digest: Digest }

/**
 * Returns the canonical registry host for an `ns` value (absent → `defaultNs`).
 * Throws NameInvalidError when it is not a host[:port].
 */
export function parseRegistryHost(ns: string | undefined | null, defaultNs: string = DOCKER_HUB): string {
  const raw = ns === undefined || ns === null || ns === '' ? defaultNs : ns
  if (raw.length > 255 || !HOST_GRAMMAR.test(raw)) throw new NameInvalidError(`invalid registry host "${clip(raw)}"`)
  const port = /:([0-9]+)$/.exec(raw)?.[1]
  if (port !== undefined && !raw.endsWith(']') && (Number(port) < 1 || Number(port) > 65535)) {
    throw new NameInvalidError(`invalid port in registry host "${clip(raw)}"`)
  }
  const host = raw.toLowerCase()
  return DOCKER_HUB_ALIASES.has(host) ? DOCKER_HUB : host
}

/**
 * Validates a repository name against the OCI distribution grammar and
 * normalises Docker Hub's implicit `library/`.
 * Throws NameInvalidError for anything else (uppercase, `..`, empty components, too long).
 */
export function parseRepository(ns: string, name: string): Repository {
  if (typeof name !== 'string' || name.length === 0) throw new NameInvalidError('repository name is empty')
  if (name.length > MAX_NAME_LENGTH) throw new NameInvalidError(`repository name is longer than ${MAX_NAME_LENGTH} characters`)
  if (!NAME_GRAMMAR.test(name)) throw new NameInvalidError(`invalid repository name "${clip(name)}"`)
  const normalised = ns === DOCKER_HUB && !name.includes('/') ? `library/${name}` : name
  return { ns, name: normalised }
}

/** True when `tag` matches the OCI tag grammar. */
export function isTag(tag: string): boolean {
  return TAG_GRAMMAR.test(tag)
}

/**
 * Parses the `<reference>` of `/v2/<name>/manifests/<reference>`: a digest when it has
 * a colon, a tag otherwise. Throws DigestInvalidError / ReferenceInvalidError.
 */
export function parseReference(reference: string): Reference {
  if (reference.includes(':')) return { kind: 'digest', digest: parseDigest(reference) }
  if (!isTag(reference)) throw new ReferenceInvalidError(`invalid tag "${clip(reference)}"`)
  return { kind: 'tag', tag: reference }
}

/** `ns/name` for logs and keys. */
export function repositoryKey(repo: Repository): string {
  return `${repo.ns}/${repo.name}`
}

function clip(input: string): string {
  const cut = input.length > 80 ? `${input.slice(0, 80)}…` : input
  return cut.replace(/[^\x20-\x7e]/g, '?')
}

/**
 * The API base URL of a registry host as clients reach it by default: Docker Hub's API host
 * for `docker.io`, plain HTTP for loopback hosts, HTTPS for everything else.
 */
export function defaultRegistryUrl(ns: string): string {
  if (ns === DOCKER_HUB) return 'https://registry-1.docker.io'
  const hostname = ns.startsWith('[') ? ns.slice(0, ns.indexOf(']') + 1) : (ns.split(':')[0] ?? '')
  const loopback = hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname)
  return `${loopback ? 'http' : 'https'}://${ns}`
}
