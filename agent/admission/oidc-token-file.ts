import { open } from 'node:fs/promises'
import { MAX_OIDC_TOKEN_LENGTH } from '../../protocol/admission.js'
import { OidcTokenUnavailableError } from './errors.js'

/**
 * Returns the OIDC token in `path` (surrounding whitespace trimmed), read now: projected
 * service-account tokens are rotated on disk, so the file is read afresh for every enrollment.
 * Throws OidcTokenUnavailableError when the file cannot be read, is empty, or holds more than
 * MAX_OIDC_TOKEN_LENGTH characters. The message never contains the token.
 */
export async function readOidcTokenFile(path: string): Promise<string> {
  let text: string
  try {
    const fh = await open(path, 'r')
    try {
      const buf = Buffer.alloc(MAX_OIDC_TOKEN_LENGTH + 64)
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0)
      text = buf.subarray(0, bytesRead).toString('utf8').trim()
    } finally {
      await fh.close()
    }
  } catch (cause) {
    throw new OidcTokenUnavailableError(`cannot read the OIDC token file ${path}: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}`, { cause })
  }
  if (text === '') throw new OidcTokenUnavailableError(`the OIDC token file ${path} is empty`)
  if (text.length > MAX_OIDC_TOKEN_LENGTH) throw new OidcTokenUnavailableError(`the OIDC token file ${path} holds more than ${MAX_OIDC_TOKEN_LENGTH} characters`)
  return text
}
