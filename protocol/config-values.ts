import { parseRegistryHost } from './reference.js'
import { UnitParseError, parseDuration, parseSize } from './units.js'

/** Parsing of command-line values shared by the agent's and the seed's configuration. No I/O. */

/**
 * A configuration value that cannot be used. `key` is the option's name (`cache-size`);
 * `label` the key as the user wrote it (`--cache-size`, `POLLEN_CACHE_SIZE`,
 * `cache-size in /etc/pollen/agent.yaml`); `detail` the message without the
 * "invalid LABEL: " prefix.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError'
  readonly detail: string
  constructor(
    readonly key: string,
    message: string,
    readonly label = `--${key}`,
  ) {
    super(`invalid ${label}: ${message}`)
    this.detail = message
  }
}

export interface HostPort {
  host: string
  port: number
}

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const

/** Parses `HOST:PORT`, `[IPv6]:PORT` or `:PORT` (all interfaces). Throws ConfigError. */
export function parseHostPort(key: string, value: string): HostPort {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value)
  const port = Number(m?.[3])
  if (m === null || !(port >= 0 && port <= 65535)) throw new ConfigError(key, `"${value}" must look like HOST:PORT`)
  return { host: m[1] ?? (m[2] === '' || m[2] === undefined ? '0.0.0.0' : m[2]), port }
}

/** A registry host flag, canonicalised. Throws ConfigError. */
export function registryHostFlag(key: string, value: string): string {
  return asConfigError(key, () => parseRegistryHost(value))
}

export function durationFlag(key: string, value: string): number {
  return asConfigError(key, () => parseDuration(value))
}

export function sizeFlag(key: string, value: string): number {
  return asConfigError(key, () => parseSize(value))
}

/** A fraction in (0, 1]; `fallback` when not given. Throws ConfigError. */
export function fractionFlag(key: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!(n > 0 && n <= 1)) throw new ConfigError(key, `"${value}" must be a fraction in (0, 1]`)
  return n
}

/** A whole number of at least `min`, written in decimal digits. Throws ConfigError. */
export function wholeNumberFlag(key: string, value: string, min = 0): number {
  const n = Number(value)
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < min) throw new ConfigError(key, `"${value.slice(0, 100)}" must be a whole number${min > 0 ? ` of at least ${min}` : ''}`)
  return n
}

export function logLevelFlag(value: string): string {
  if (!(LOG_LEVELS as readonly string[]).includes(value)) throw new ConfigError('log-level', `unknown level "${value}" (${LOG_LEVELS.join(', ')})`)
  return value
}

function asConfigError<T>(key: string, fn: () => T): T {
  try {
    return fn()
  } catch (err) {
    if (err instanceof UnitParseError || (err instanceof Error && err.name === 'NameInvalidError')) throw new ConfigError(key, err.message)
    throw err
  }
}

/**
 * A libp2p multiaddr flag, checked for shape only (`/ip4/…/tcp/N`, `/ip6/…`, `/dns4/…`,
 * optionally ending in `/p2p/<id>`); libp2p parses it fully. Throws ConfigError.
 */
export function multiaddrFlag(key: string, value: string): string {
  if (!/^\/(ip4|ip6|dns|dns4|dns6)\/[^/\s]+\/tcp\/\d{1,5}(\/p2p\/[1-9A-HJ-NP-Za-km-z]+)?$/.test(value)) {
    throw new ConfigError(key, `"${value.slice(0, 100)}" is not a multiaddr like /ip4/10.0.0.5/tcp/5001`)
  }
  return value
}
