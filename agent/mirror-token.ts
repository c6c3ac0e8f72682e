import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { ConfigError } from '../protocol/config-values.js'
import { PollenError } from '../protocol/errors.js'

/** The header containerd sends (hosts.toml `[host."…".header]`) to a mirror that listens beyond loopback. */
export const MIRROR_TOKEN_HEADER = 'X-Pollen-Mirror-Token'
const MIN_TOKEN_LENGTH = 16
const MAX_TOKEN_LENGTH = 512

/** Refused by a mirror that needs its token: 403 DENIED (the mirror never challenges containerd). */
export class MirrorTokenRequiredError extends PollenError {
  constructor() {
    super('MirrorTokenRequiredError', 'DENIED', `this mirror listens beyond loopback: send its token in the ${MIRROR_TOKEN_HEADER} header (or Authorization: Bearer)`)
  }
}

/**
 * Checks a mirror token read from `--mirror-token-file`: 16 to 512 visible ASCII characters
 * without quotes or backslashes (it is written into hosts.toml). Throws ConfigError.
 */
export function parseMirrorToken(text: string): string {
  const token = text.trim()
  if (token.length < MIN_TOKEN_LENGTH || token.length > MAX_TOKEN_LENGTH || !/^[\x21-\x7e]+$/.test(token) || /["'\\]/.test(token)) {
    throw new ConfigError('mirror-token-file', `the token must be ${MIN_TOKEN_LENGTH} to ${MAX_TOKEN_LENGTH} visible ASCII characters without quotes or backslashes (e.g. openssl rand -hex 32)`)
  }
  return token
}

/**
 * The mirror's check when it listens beyond loopback: the request carries the token in
 * `X-Pollen-Mirror-Token` or `Authorization: Bearer`. Compared in constant time. Throws
 * MirrorTokenRequiredError (after calling `onDenied`) otherwise.
 */
export function mirrorTokenCheck(token: string, onDenied: () => void): (req: IncomingMessage) => Promise<void> {
  const want = createHash('sha256').update(token).digest()
  return async (req) => {
    const custom = req.headers[MIRROR_TOKEN_HEADER.toLowerCase()]
    const auth = req.headers.authorization
    const given = typeof custom === 'string' ? custom.trim() : typeof auth === 'string' && /^Bearer /i.test(auth) ? auth.slice(7).trim() : undefined
    if (given !== undefined && timingSafeEqual(createHash('sha256').update(given).digest(), want)) return
    onDenied()
    throw new MirrorTokenRequiredError()
  }
}
