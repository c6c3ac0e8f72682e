import { DigestInvalidError, UnsupportedDigestAlgorithmError } from './errors.js'

export type DigestAlgorithm = 'sha256' | 'sha512'

const HEX_LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 }

/** A parsed, canonical content digest such as `sha256:<64 lowercase hex>`. */
export interface Digest {
  readonly algorithm: DigestAlgorithm
  readonly hex: string
  /** The canonical `algorithm:hex` form. */
  readonly value: string
}

const ALGORITHM_GRAMMAR = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*$/
const MAX_DIGEST_LENGTH = 256

/**
 * Parses a digest string.
 * Returns the digest for `sha256:<64 hex>` and `sha512:<128 hex>`, hex in lowercase only.
 * Throws UnsupportedDigestAlgorithmError for a well-formed digest of another algorithm,
 * and DigestInvalidError for anything else (uppercase hex, wrong length, no separator).
 */
export function parseDigest(input: string): Digest {
  if (typeof input !== 'string' || input.length === 0 || input.length > MAX_DIGEST_LENGTH) {
    throw new DigestInvalidError('digest is empty or too long')
  }
  const colon = input.indexOf(':')
  if (colon <= 0) throw new DigestInvalidError(`digest "${printable(input)}" has no algorithm`)
  const algorithm = input.slice(0, colon)
  const hex = input.slice(colon + 1)
  if (!ALGORITHM_GRAMMAR.test(algorithm)) {
    throw new DigestInvalidError(`digest "${printable(input)}" has a malformed algorithm`)
  }
  if (algorithm !== 'sha256' && algorithm !== 'sha512') throw new UnsupportedDigestAlgorithmError(algorithm)
  const want = HEX_LENGTH[algorithm]
  if (hex.length !== want || !/^[0-9a-f]+$/.test(hex)) {
    throw new DigestInvalidError(`digest "${printable(input)}" must be ${algorithm}: followed by ${want} lowercase hex characters`)
  }
  return { algorithm, hex, value: input }
}

/** True when `input` parses as a supported digest. */
export function isDigest(input: string): boolean {
  try {
    parseDigest(input)
    return true
  } catch {
    return false
  }
}

function printable(input: string): string {
  const cut = input.length > 80 ? `${input.slice(0, 80)}…` : input
  return cut.replace(/[^\x20-\x7e]/g, '?')
}
