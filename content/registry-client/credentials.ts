import { PollenError } from '../../protocol/errors.js'
import { parseRegistryHost } from '../../protocol/reference.js'
import { CredentialsFileError } from './errors.js'

/** A user name and password (or personal access token) for one upstream registry. */
export interface UpstreamCredentials {
  username: string
  password: string
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/**
 * Parses a Docker `config.json` and returns credentials by canonical registry host
 * (`https://index.docker.io/v1/` → `docker.io`, `http://127.0.0.1:5000/x` → `127.0.0.1:5000`).
 * An entry is read from `auth` (base64 of `user:password`) or from `username` and `password`;
 * entries with neither (`{}`, only `identitytoken`) are skipped.
 * Throws CredentialsFileError, whose message never holds a secret, for text that is not JSON,
 * a malformed entry, a key that is not a registry host, or two entries with different
 * credentials for one host.
 */
export function loadDockerConfig(json: string): Map<string, UpstreamCredentials> {
  let doc: unknown
  try {
    doc = JSON.parse(json)
  } catch {
    // The parser's message quotes the input, which may hold a secret.
    throw new CredentialsFileError('credentials file is not valid JSON')
  }
  if (!isObject(doc)) throw new CredentialsFileError('credentials file must hold a JSON object')
  const out = new Map<string, UpstreamCredentials>()
  if (doc.auths === undefined) return out
  if (!isObject(doc.auths)) throw new CredentialsFileError('"auths" in the credentials file must be an object')
  for (const [key, entry] of Object.entries(doc.auths)) {
    const host = registryHostOfKey(key)
    if (!isObject(entry)) throw new CredentialsFileError(`auths["${clip(key)}"] must be an object`)
    const credentials = readEntry(key, entry)
    if (credentials === undefined) continue
    const known = out.get(host)
    if (known !== undefined && (known.username !== credentials.username || known.password !== credentials.password)) {
      throw new CredentialsFileError(`two entries of the credentials file name registry ${host} with different credentials`)
    }
    out.set(host, credentials)
  }
  return out
}

/** The canonical registry host for an `auths` key: scheme and path are dropped. Throws CredentialsFileError. */
export function registryHostOfKey(key: string): string {
  const withoutScheme = key.trim().replace(/^[A-Za-z][A-Za-z0-9+.-]*:\/\//, '')
  const host = withoutScheme.split('/', 1)[0] ?? ''
  try {
    return parseRegistryHost(host, '')
  } catch (err) {
    if (err instanceof PollenError) throw new CredentialsFileError(`auths key "${clip(key)}" does not name a registry host`)
    throw err
  }
}

function readEntry(key: string, entry: Record<string, unknown>): UpstreamCredentials | undefined {
  const where = `auths["${clip(key)}"]`
  if (entry.auth !== undefined && entry.auth !== '') {
    if (typeof entry.auth !== 'string' || !BASE64.test(entry.auth)) throw new CredentialsFileError(`${where}.auth is not base64`)
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8')
    const colon = decoded.indexOf(':')
    if (colon <= 0) throw new CredentialsFileError(`${where}.auth must be base64 of "username:password"`)
    return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) }
  }
  const { username, password } = entry
  if (username === undefined && password === undefined) return undefined
  if (typeof username !== 'string' || username === '' || typeof password !== 'string') {
    throw new CredentialsFileError(`${where} needs both "username" and "password" as strings`)
  }
  return { username, password }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

function clip(input: string): string {
  const cut = input.length > 80 ? `${input.slice(0, 80)}…` : input
  return cut.replace(/[^\x20-\x7e]/g, '?')
}
