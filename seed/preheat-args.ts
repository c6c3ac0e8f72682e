import { parseArgs } from 'node:util'
import { ConfigError } from '../protocol/config-values.js'
import { parseImageReference, type ImageReference } from '../protocol/image-reference.js'
import { PollenError } from '../protocol/errors.js'
import { looksLikeSecret } from './admission/audit-log.js'
import { DEFAULT_PREHEAT_SEED_URL, MAX_PREHEAT_IMAGES } from './constants.js'

/** A platform to preheat from an index: `os/arch` or `os/arch/variant`. */
export interface PlatformFilter {
  os: string
  architecture: string
  variant?: string
}

/** `pollen-seed preheat …`: make the running seed fetch images before a rollout. */
export interface PreheatCommand {
  kind: 'preheat'
  /** The seed's data directory; its signing keys sign the command's own admission token. */
  dataDir: string
  /** The running seed's base URL (origin, no path). */
  seedUrl: string
  /** The running seed's `--issuer` and `--audience`, for the token. */
  issuer: string
  audience: string
  /** Platforms to follow in an index; `all` follows every child manifest. */
  platforms: PlatformFilter[] | 'all'
  images: ImageReference[]
}

const OPTIONS = {
  data: { type: 'string' },
  seed: { type: 'string' },
  platform: { type: 'string', multiple: true },
  issuer: { type: 'string' },
  audience: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const

export interface PreheatDefaults {
  issuer: string
  audience: string
}

/**
 * Parses `pollen-seed preheat --data DIR [--seed URL] [--platform all|OS/ARCH[/VARIANT]]…
 * [--issuer NAME] [--audience NAME] IMAGE…` (argv after `preheat`). Throws ConfigError naming
 * the bad flag or image.
 */
export function parsePreheatArgs(argv: string[], defaults: PreheatDefaults): PreheatCommand | 'help' {
  let parsed
  try {
    parsed = parseArgs({ args: argv, strict: true, allowPositionals: true, options: OPTIONS })
  } catch (err) {
    const message = (err as Error).message
    throw new ConfigError('arguments', looksLikeSecret(message) ? 'unexpected argument (see --help)' : message)
  }
  const { values, positionals } = parsed
  if (values.help === true) return 'help'
  if (values.data === undefined || values.data === '') throw new ConfigError('data', "is required: give the seed's data directory")
  if (positionals.length === 0) throw argumentError('image', 'give one or more images, like docker.io/library/alpine:3.20')
  if (positionals.length > MAX_PREHEAT_IMAGES) throw argumentError('image', `at most ${MAX_PREHEAT_IMAGES} images at once`)
  return {
    kind: 'preheat',
    dataDir: values.data,
    seedUrl: seedUrlFlag(values.seed ?? DEFAULT_PREHEAT_SEED_URL),
    issuer: nameFlag('issuer', values.issuer ?? defaults.issuer),
    audience: nameFlag('audience', values.audience ?? defaults.audience),
    platforms: platformFlag(values.platform),
    images: positionals.map(imageArgument),
  }
}

function imageArgument(value: string): ImageReference {
  try {
    return parseImageReference(value)
  } catch (err) {
    if (err instanceof PollenError) throw argumentError('image', `"${clip(value)}" is not an image reference: ${err.message}`)
    throw err
  }
}

function seedUrlFlag(value: string): string {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new ConfigError('seed', `"${clip(value)}" is not a URL`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError('seed', `"${clip(value)}" must be http:// or https://`)
  if (url.username !== '' || url.password !== '') throw new ConfigError('seed', 'the URL must not carry credentials')
  return url.origin
}

function platformFlag(values: string[] | undefined): PlatformFilter[] | 'all' {
  if (values === undefined || values.includes('all')) return 'all'
  return values.map((value) => {
    const parts = value.split('/')
    const valid = parts.length >= 2 && parts.length <= 3 && parts.every((p) => /^[a-z0-9._-]{1,32}$/i.test(p))
    if (!valid) throw new ConfigError('platform', `"${clip(value)}" must be all or OS/ARCH[/VARIANT], like linux/arm64/v8`)
    const [os = '', architecture = '', variant] = parts
    return variant === undefined ? { os, architecture } : { os, architecture, variant }
  })
}

/** A token issuer or audience: printable, no spaces (as the seed's own flags). */
function nameFlag(key: string, value: string): string {
  if (value.length === 0 || value.length > 256 || !/^[\x21-\x7e]+$/.test(value)) {
    throw new ConfigError(key, `"${clip(value)}" must be 1 to 256 printable characters without spaces`)
  }
  return value
}

/** A ConfigError for a positional argument, which has no `--flag` to name in its message. */
function argumentError(key: string, message: string): ConfigError {
  const err = new ConfigError(key, message)
  err.message = message
  return err
}

function clip(value: string): string {
  if (looksLikeSecret(value)) return '[redacted]'
  const cut = value.length > 100 ? `${value.slice(0, 100)}…` : value
  return cut.replace(/[^\x20-\x7e]/g, '?')
}
