import type { IncomingMessage } from 'node:http'
import type { AdmissionVerifier } from '../../content/admission/verifier.js'
import type { Repository } from '../../protocol/reference.js'
import type { AuditLog } from './audit-log.js'
import type { RevocationList } from './revocations.js'

export interface SeedAuthorizerComponents {
  verifier: AdmissionVerifier
  audit: AuditLog
  /**
   * The list the verifier's `revoked` reads (from its cache). Brought up to date before every
   * check (a stat of its file), so a revocation by the CLI, another process, applies at once.
   */
  revocations: Pick<RevocationList, 'snapshot'>
  onDenied: (reason: string) => void
}

/**
 * The seed's check on every `/v2/` request: `Authorization: Bearer <admission token>`, valid
 * (signature, times, issuer, audience, not revoked) and, for a manifest or blob, with a scope
 * that covers the repository. Each served pull and each refusal is audited (never the token).
 */
export function seedAuthorizer(c: SeedAuthorizerComponents): (req: IncomingMessage, repository: Repository | undefined) => Promise<void> {
  return async (req, repository) => {
    const token = bearerToken(req.headers.authorization)
    const what = repository === undefined ? undefined : `${repository.ns}/${repository.name}`
    try {
      await c.revocations.snapshot()
      const claims = await c.verifier.verify(token, repository === undefined ? {} : { repository })
      if (what !== undefined) c.audit.record({ event: 'pull', peerId: claims.sub, jti: claims.jti, repository: what, remote: req.socket.remoteAddress })
    } catch (err) {
      const reason = (err as { reason?: string }).reason ?? 'error'
      c.onDenied(reason)
      c.audit.record({ event: 'refuse', reason, ...(what === undefined ? {} : { repository: what }), remote: req.socket.remoteAddress })
      throw err
    }
  }
}

/** The credentials of an `Authorization: Bearer …` header, or undefined for any other header. */
export function bearerToken(header: string | string[] | undefined): string | undefined {
  return typeof header === 'string' && /^Bearer /i.test(header) ? header.slice(7).trim() : undefined
}

/**
 * The challenge a 401 carries, so that registry clients given a token (skopeo
 * `--src-registry-token`) send it: the realm is this seed's enrollment endpoint.
 */
export function seedChallenge(req: IncomingMessage, audience: string): string {
  const host = (req.headers.host ?? 'localhost').replace(/[^A-Za-z0-9.:[\]-]/g, '')
  return `Bearer realm="http://${host}/v1/admission",service="${audience.replace(/["\\]/g, '')}"`
}
