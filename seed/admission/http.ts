import { randomBytes } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import { ProofReplayCache, verifyProof } from '../../content/admission/proof.js'
import { AdmissionVerifier, signAdmissionToken } from '../../content/admission/verifier.js'
import { AdmissionDeniedError, type AdmissionClaims } from '../../protocol/admission.js'
import { PollenError } from '../../protocol/errors.js'
import { toOciError } from '../../protocol/oci-errors.js'
import type { Admission } from './admission.js'
import { JoinTokenDeniedError, OidcTokenDeniedError } from './errors.js'
import type { OidcVerifier } from './oidc.js'

export interface AdmissionHttpInit {
  issuer: string
  audience: string
  /** Lifetime of issued tokens. */
  tokenTtlMs: number
}

export interface AdmissionHttpComponents {
  admission: Admission
  logger: Logger
  now?: () => number
  /** Verifies OIDC tokens (`--oidc-issuer`); without it enrollment with an OIDC token is refused. */
  oidc?: OidcVerifier
  onIssued?: (how: EnrollmentMethod) => void
  onDenied?: (reason: string) => void
}

/** How an agent obtained a token; the `how` label of pollen_seed_admission_issued_total. */
export type EnrollmentMethod = 'join-token' | 'refresh' | 'oidc'

/** The body of `POST /v1/admission`. */
export interface EnrollmentRequest {
  peerId: string
  proof: { timestamp: number; signature: string }
  /** A join token from `pollen-seed join-token create`. */
  joinToken?: string
  /** The agent's current, still valid admission token, to refresh it. */
  token?: string
  /** An OIDC token from the seed's `--oidc-issuer` (e.g. a projected service-account token). */
  oidcToken?: string
}

/** The answer: the admission token and when it expires (ms since the epoch). */
export interface EnrollmentResponse {
  token: string
  expiresAt: number
  issuer: string
  audience: string
}

const MAX_BODY_BYTES = 16 * 1024

/**
 * The seed's admission endpoints:
 * - `GET /.well-known/jwks.json`: the public keys that verify admission tokens (current and
 *   retired-but-still-valid), cacheable for a minute;
 * - `GET /v1/revocations`: revoked PeerIds with the list's version, for agents to refuse peers;
 * - `POST /v1/admission`: enrollment. The agent proves it holds its PeerId's key (a signature
 *   over issuer, PeerId and time) and presents an OIDC token (when an OIDC verifier is
 *   configured; preferred), a join token, or its current admission token; it gets a token bound
 *   to its PeerId (`sub`) with the OIDC scope, the join token's scope or the current token's.
 * Returns false for other paths. Every issuance and refusal is audited; tokens never are.
 */
export function admissionHandler(init: AdmissionHttpInit, c: AdmissionHttpComponents): {
  handle: (req: IncomingMessage, res: ServerResponse) => boolean
  verifier: AdmissionVerifier
} {
  const now = c.now ?? Date.now
  const { admission } = c
  const verifier = new AdmissionVerifier(
    { issuer: init.issuer, audience: init.audience },
    { keys: () => admission.keys.jwks(), revoked: (peerId) => admission.revocations.isRevokedCached(peerId), now },
  )
  const seen = new ProofReplayCache({}, { now })

  async function enroll(req: IncomingMessage): Promise<EnrollmentResponse> {
    const body = await readJson(req)
    const peerId = typeof body.peerId === 'string' ? body.peerId : ''
    const proof = body.proof as { timestamp?: unknown; signature?: unknown } | undefined
    if (peerId === '' || typeof proof?.timestamp !== 'number' || typeof proof.signature !== 'string') {
      throw new AdmissionDeniedError('malformed', 'enrollment needs peerId and proof {timestamp, signature}')
    }
    try {
      await verifyProof({ peerId, timestamp: proof.timestamp, signature: proof.signature }, { audience: init.issuer, now, seen })
    } catch (err) {
      throw new AdmissionDeniedError('signature', `proof of key possession refused: ${(err as Error).message}`)
    }
    if (await admission.revocations.isRevoked(peerId)) throw new AdmissionDeniedError('revoked', `peer ${peerId} is revoked`)
    let scope: string[]
    let how: EnrollmentMethod
    let subject: string | undefined
    if (typeof body.oidcToken === 'string' && c.oidc !== undefined) {
      ;({ scope, subject } = await verifyOidc(c.oidc, body.oidcToken))
      how = 'oidc'
    } else if (typeof body.joinToken === 'string') {
      try {
        scope = (await admission.joinTokens.redeem(body.joinToken)).scope
      } catch (err) {
        const reason = (err as { reason?: string }).reason ?? 'unknown'
        throw new AdmissionDeniedError('missing', `join token refused (${reason})`, { cause: err })
      }
      how = 'join-token'
    } else if (typeof body.token === 'string') {
      scope = (await verifier.verify(body.token, { peerId })).scope
      how = 'refresh'
    } else if (typeof body.oidcToken === 'string') {
      throw new AdmissionDeniedError('missing', 'this seed does not accept OIDC tokens (no --oidc-issuer); use a join token')
    } else {
      throw new AdmissionDeniedError('missing', 'enrollment needs an oidcToken, a joinToken or a current token')
    }
    const issuedAt = Math.floor(now() / 1000)
    const claims: AdmissionClaims = {
      iss: init.issuer,
      aud: init.audience,
      sub: peerId,
      iat: issuedAt,
      nbf: issuedAt,
      exp: issuedAt + Math.floor(init.tokenTtlMs / 1000),
      jti: randomBytes(12).toString('base64url'),
      scope,
    }
    const key = await admission.keys.current()
    const token = await signAdmissionToken(claims, key.privateKey, key.kid)
    admission.audit.record({ event: 'issue', peerId, subject, scope, jti: claims.jti, reason: how, remote: req.socket.remoteAddress })
    c.onIssued?.(how)
    return { token, expiresAt: claims.exp * 1000, issuer: init.issuer, audience: init.audience }
  }

  const handle = (req: IncomingMessage, res: ServerResponse): boolean => {
    const path = (req.url ?? '').split('?')[0]
    if (path === '/.well-known/jwks.json' && req.method === 'GET') {
      void admission.keys.jwks().then(
        (jwks) => sendJson(res, 200, jwks, { 'Cache-Control': `max-age=${admission.keys.jwksMaxAgeS}` }),
        (err: unknown) => fail(res, err),
      )
      return true
    }
    if (path === '/v1/revocations' && req.method === 'GET') {
      void admission.revocations.snapshot().then(
        (snap) => sendJson(res, 200, { version: snap.version, revoked: snap.entries.map((e) => ({ peerId: e.peerId, revokedAt: e.revokedAt })) }, { 'Cache-Control': 'no-store' }),
        (err: unknown) => fail(res, err),
      )
      return true
    }
    if (path === '/v1/admission') {
      if (req.method !== 'POST') {
        res.writeHead(405, { Allow: 'POST', 'Content-Length': 0 })
        res.end()
        return true
      }
      void enroll(req).then(
        (answer) => sendJson(res, 200, answer, { 'Cache-Control': 'no-store' }),
        (err: unknown) => {
          const reason = refusalReason(err)
          const subject = err instanceof AdmissionDeniedError && err.cause instanceof OidcTokenDeniedError ? err.cause.subject : undefined
          admission.audit.record({ event: 'refuse', reason, subject, remote: req.socket.remoteAddress })
          c.onDenied?.(reason)
          if (!(err instanceof PollenError)) c.logger.error({ err }, 'enrollment failed')
          fail(res, err)
        },
      )
      return true
    }
    return false
  }
  return { handle, verifier }
}

/** The OIDC identity in `token`. Throws AdmissionDeniedError with the OidcTokenDeniedError as cause; unavailable keys propagate (503). */
async function verifyOidc(oidc: OidcVerifier, token: string): Promise<{ scope: string[]; subject: string }> {
  try {
    return await oidc.verify(token)
  } catch (err) {
    if (err instanceof OidcTokenDeniedError) throw new AdmissionDeniedError(err.reason, `OIDC token: ${err.why}`, { cause: err })
    throw err
  }
}

/**
 * The `reason` of a refused enrollment, for the audit log and pollen_seed_admission_denied_total:
 * `join-token-<why>` (`unknown`, `expired`, `used-up`) for a refused join token, else the
 * AdmissionDeniedError's reason, else 'error'.
 */
function refusalReason(err: unknown): string {
  if (!(err instanceof AdmissionDeniedError)) return 'error'
  return err.cause instanceof JoinTokenDeniedError ? `join-token-${err.cause.reason}` : err.reason
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const parts: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).byteLength
    if (size > MAX_BODY_BYTES) throw new AdmissionDeniedError('malformed', 'enrollment body too large')
    parts.push(chunk as Buffer)
  }
  try {
    const body = JSON.parse(Buffer.concat(parts).toString('utf8')) as unknown
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new Error('not an object')
    return body as Record<string, unknown>
  } catch {
    throw new AdmissionDeniedError('malformed', 'enrollment body is not a JSON object')
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const json = JSON.stringify(body)
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(json), ...headers })
  res.end(json)
}

function fail(res: ServerResponse, err: unknown): void {
  const { status, body } = toOciError(err)
  sendJson(res, status, body)
}
