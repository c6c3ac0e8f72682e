/**
 * Structural checks on a compact JWS, run before any of it reaches jose:
 * size, shape, strict base64url, and the protected header's `alg`, `typ` and
 * forbidden parameters. Nothing here trusts the token; nothing here verifies it.
 */
import { ADMISSION_ALG, AdmissionDeniedError, MAX_TOKEN_LENGTH } from '../../protocol/admission.js'

/**
 * Header parameters that would let the token choose its own key or change how it is
 * processed: embedded/remote keys and certificates, critical extensions, unencoded payloads.
 */
export const FORBIDDEN_HEADER_PARAMS = ['jwk', 'jku', 'x5c', 'x5u', 'x5t', 'x5t#S256', 'crit', 'b64', 'zip'] as const

/** Length of an Ed25519 signature in bytes. */
const ED25519_SIGNATURE_BYTES = 64
const BASE64URL = /^[A-Za-z0-9_-]*$/
const utf8 = new TextDecoder('utf-8', { fatal: true })

/** What the verifier needs from a token that passed the structural checks. */
export interface InspectedToken {
  /** The `kid` header, undefined when absent or not a non-empty string. */
  readonly kid: string | undefined
}

/**
 * Checks a compact JWS's structure. Returns the `kid` to look up.
 * Throws AdmissionDeniedError:
 *   'missing'          — not a string, or empty;
 *   'malformed'        — longer than MAX_TOKEN_LENGTH, not three parts, a part that is not
 *                        canonical base64url, a header that is not a UTF-8 JSON object, a `typ`
 *                        other than JWT, or a signature that is not 64 bytes;
 *   'algorithm'        — `alg` other than exactly EdDSA (`none`, HS256, RS256, Ed25519, …);
 *   'forbidden-header' — any of FORBIDDEN_HEADER_PARAMS present, whatever its value.
 */
export function inspectCompactToken(token: unknown): InspectedToken {
  if (typeof token !== 'string' || token.length === 0) throw new AdmissionDeniedError('missing', 'no admission token presented')
  if (token.length > MAX_TOKEN_LENGTH) throw new AdmissionDeniedError('malformed', `token is longer than ${MAX_TOKEN_LENGTH} characters`)
  const parts = token.split('.')
  if (parts.length !== 3) throw new AdmissionDeniedError('malformed', 'token is not a compact JWS of three parts')
  const [encodedHeader = '', encodedPayload = '', encodedSignature = ''] = parts
  if (encodedHeader === '' || encodedPayload === '') throw new AdmissionDeniedError('malformed', 'empty header or payload')
  const header = parseHeader(strictBase64url(encodedHeader, 'header'))
  strictBase64url(encodedPayload, 'payload')
  const signature = strictBase64url(encodedSignature, 'signature')

  if (header.alg !== ADMISSION_ALG) throw new AdmissionDeniedError('algorithm', `"alg" must be ${ADMISSION_ALG}`)
  for (const param of FORBIDDEN_HEADER_PARAMS) {
    if (Object.hasOwn(header, param)) throw new AdmissionDeniedError('forbidden-header', `header parameter "${param}" is not accepted`)
  }
  if (Object.hasOwn(header, 'typ') && (typeof header.typ !== 'string' || header.typ.toUpperCase() !== 'JWT')) {
    throw new AdmissionDeniedError('malformed', '"typ" must be JWT')
  }
  if (signature.length !== ED25519_SIGNATURE_BYTES) throw new AdmissionDeniedError('malformed', `signature is not ${ED25519_SIGNATURE_BYTES} bytes`)
  const kid = typeof header.kid === 'string' && header.kid.length > 0 ? header.kid : undefined
  return { kid }
}

/**
 * Decodes base64url that is in canonical form: alphabet only, no padding, and unused
 * trailing bits zero. (A lenient decoder would accept several spellings of one signature,
 * so a changed token could still verify.)
 */
function strictBase64url(part: string, what: string): Buffer {
  if (!BASE64URL.test(part) || part.length % 4 === 1) throw new AdmissionDeniedError('malformed', `${what} is not base64url`)
  const bytes = Buffer.from(part, 'base64url')
  if (bytes.toString('base64url') !== part) throw new AdmissionDeniedError('malformed', `${what} is not canonical base64url`)
  return bytes
}

function parseHeader(bytes: Buffer): Record<string, unknown> {
  let header: unknown
  try {
    header = JSON.parse(utf8.decode(bytes))
  } catch {
    throw new AdmissionDeniedError('malformed', 'header is not UTF-8 JSON')
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new AdmissionDeniedError('malformed', 'header is not a JSON object')
  }
  return header as Record<string, unknown>
}
