import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { pino } from 'pino'
import { openAdmission, type Admission } from '../../seed/admission/admission.js'
import { admissionHandler } from '../../seed/admission/http.js'
import type { OidcVerifier } from '../../seed/admission/oidc.js'

export const TEST_ISSUER = 'pollen-seed'
export const TEST_AUDIENCE = 'pollen'

/** The real seed admission handler on loopback; `down()`/`up()` close and reopen the same port. */
export interface AdmissionSeed {
  url: string
  admission: Admission
  /** How the tokens issued so far were obtained (`join-token`, `refresh`, `oidc`). */
  issued: string[]
  /** Requests received so far. */
  requests(): number
  /** When set, every request is answered with this JSON (200) instead of the handler's answer. */
  override: unknown
  down(): Promise<void>
  up(): Promise<void>
  close(): Promise<void>
}

/** Starts the seed's admission endpoints over state in `dataDir`, on a free loopback port; with `oidc`, agents may enroll with OIDC tokens. */
export async function startAdmissionSeed(dataDir: string, tokenTtlMs = 600_000, keyRotationMs?: number, oidc?: OidcVerifier): Promise<AdmissionSeed> {
  const logger = pino({ level: 'silent' })
  const admission = await openAdmission({ dataDir, keyRotationMs }, { logger })
  const issued: string[] = []
  const { handle } = admissionHandler({ issuer: TEST_ISSUER, audience: TEST_AUDIENCE, tokenTtlMs }, { admission, oidc, logger, onIssued: (how) => issued.push(how) })
  let requests = 0
  const seed: AdmissionSeed = {
    url: '',
    admission,
    issued,
    requests: () => requests,
    override: undefined,
    down,
    async up() {
      server.listen(port, '127.0.0.1')
      await once(server, 'listening')
    },
    async close() {
      await down()
      await admission.close()
    },
  }
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    requests++
    if (seed.override !== undefined) res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(seed.override))
    else if (!handle(req, res)) res.writeHead(404).end()
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  seed.url = `http://127.0.0.1:${port}`
  async function down(): Promise<void> {
    if (!server.listening) return
    server.closeAllConnections()
    await new Promise((r) => server.close(r))
  }
  return seed
}
