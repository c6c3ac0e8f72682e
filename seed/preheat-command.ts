import { randomBytes } from 'node:crypto'
import { stat } from 'node:fs/promises'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Logger } from 'pino'
import { signAdmissionToken } from '../content/admission/verifier.js'
import { PollenError } from '../protocol/errors.js'
import { admissionPaths } from './admission/admission.js'
import { AuditLog } from './admission/audit-log.js'
import { SigningKeys } from './admission/signing-keys.js'
import { PREHEAT_TOKEN_TTL_MS } from './constants.js'
import { preheatImages, type PreheatInit } from './preheat.js'
import type { PreheatCommand } from './preheat-args.js'
import { PlainProgress, TtyProgress, type Output } from './preheat-progress.js'

export interface PreheatIo {
  /** `process.stdout`: progress and the summary; a TTY gets updating lines. */
  stdout: Output & { isTTY?: boolean; columns?: number }
  stderr: Output
  logger: Logger
  /** Milliseconds since the epoch. */
  now?: () => number
}

/** Scope of the preheat token: it may read any repository the seed can reach. */
const PREHEAT_SCOPE = ['**']

/**
 * Runs `pollen-seed preheat` against the running seed at `cmd.seedUrl`, signing its own
 * admission token with the current key in the seed's data dir (read only: nothing there
 * is created or rotated). Resolves the exit code: 0 when every image is preheated, 1 when
 * any failed (each is named on stderr) or no signing key can be read.
 */
export async function runPreheat(cmd: PreheatCommand, io: PreheatIo, init: Partial<PreheatInit> = {}): Promise<number> {
  const dir = await stat(cmd.dataDir).catch(() => undefined)
  if (dir?.isDirectory() !== true) return fail(io, `data directory ${cmd.dataDir} does not exist (is --data the seed's?)`)
  let token: () => Promise<string>
  try {
    token = await selfToken(cmd, io)
  } catch (err) {
    if (err instanceof PollenError) return fail(io, err.message)
    throw err
  }
  const images = cmd.images.map((i) => i.text)
  const common = { images, out: io.stdout, err: io.stderr, ...(io.now === undefined ? {} : { now: io.now }) }
  const reporter = io.stdout.isTTY === true ? new TtyProgress({ ...common, ...(io.stdout.columns === undefined ? {} : { columns: io.stdout.columns }) }) : new PlainProgress(common)
  const outcomes = await preheatImages(cmd.images, { ...init, seedUrl: cmd.seedUrl, platforms: cmd.platforms }, { token, listener: reporter })
  reporter.finish()
  return outcomes.every((o) => o.ok) ? 0 : 1
}

/** The seed's data dir holds no signing key that signs now. */
export class NoSigningKeyError extends PollenError {
  constructor(dir: string) {
    super('NoSigningKeyError', 'UNAVAILABLE', `no admission signing key in ${dir}: start the seed with this --data first`)
  }
}

/**
 * A source of admission tokens for a fresh Ed25519 PeerId of this run, scope `**`, signed
 * with the seed's current key and signed again (with the then-current key) at two-thirds of
 * their life. Each issuance is recorded in the seed's audit log (never the token).
 * Throws NoSigningKeyError, or SigningKeyInvalidError for a malformed key file.
 */
async function selfToken(cmd: PreheatCommand, io: PreheatIo): Promise<() => Promise<string>> {
  const paths = admissionPaths(cmd.dataDir)
  const now = io.now ?? Date.now
  const peerId = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
  const sign = async (): Promise<{ token: string; renewAt: number }> => {
    const key = await SigningKeys.readCurrent(paths.keys, { logger: io.logger.child({ component: 'signing-keys' }), now })
    if (key === undefined) throw new NoSigningKeyError(paths.keys)
    const iat = Math.floor(now() / 1000)
    const ttlS = Math.floor(PREHEAT_TOKEN_TTL_MS / 1000)
    const jti = randomBytes(12).toString('base64url')
    const claims = { iss: cmd.issuer, aud: cmd.audience, sub: peerId, iat, nbf: iat, exp: iat + ttlS, jti, scope: PREHEAT_SCOPE }
    const token = await signAdmissionToken(claims, key.privateKey, key.kid)
    const audit = await AuditLog.open({ path: paths.audit }, { logger: io.logger.child({ component: 'audit' }) })
    audit.record({ event: 'issue', peerId, subject: 'pollen-seed preheat', jti, scope: PREHEAT_SCOPE })
    await audit.close()
    return { token, renewAt: (iat + (2 * ttlS) / 3) * 1000 }
  }
  let current = await sign()
  let renewing: Promise<void> | undefined
  return async () => {
    if (now() >= current.renewAt) {
      renewing ??= sign()
        .then((next) => void (current = next))
        .finally(() => (renewing = undefined))
      await renewing
    }
    return current.token
  }
}

function fail(io: PreheatIo, message: string): number {
  io.stderr.write(`pollen-seed: ${message}\n`)
  return 1
}
