import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { AuditLog } from './audit-log.js'
import { ADMISSION_DIR, AUDIT_LOG_FILE, JOIN_TOKENS_FILE, KEYS_DIR, REVOKED_FILE } from './constants.js'
import { JoinTokenStore } from './join-tokens.js'
import { RevocationList } from './revocations.js'
import { SigningKeys } from './signing-keys.js'

/** Where admission state lives inside a seed data dir. */
export function admissionPaths(dataDir: string): { dir: string; keys: string; joinTokens: string; revoked: string; audit: string } {
  const dir = join(dataDir, ADMISSION_DIR)
  return { dir, keys: join(dir, KEYS_DIR), joinTokens: join(dir, JOIN_TOKENS_FILE), revoked: join(dir, REVOKED_FILE), audit: join(dir, AUDIT_LOG_FILE) }
}

export interface AdmissionInit {
  dataDir: string
  keyRotationMs?: number
  maxTokenLifetimeMs?: number
}

export interface AdmissionComponents {
  logger: Logger
  /** Milliseconds since the epoch. */
  now?: () => number
}

export interface Admission {
  keys: SigningKeys
  joinTokens: JoinTokenStore
  revocations: RevocationList
  audit: AuditLog
  close(): Promise<void>
}

/**
 * Opens the seed's admission state in `<dataDir>/admission/` (mode 0700). Throws
 * SigningKeyInvalidError or AdmissionStateInvalidError when persisted state is corrupt.
 */
export async function openAdmission(init: AdmissionInit, c: AdmissionComponents): Promise<Admission> {
  const paths = admissionPaths(init.dataDir)
  await mkdir(paths.dir, { recursive: true, mode: 0o700 })
  const child = (component: string): AdmissionComponents => ({ logger: c.logger.child({ component }), now: c.now })
  const keys = await SigningKeys.open({ dir: paths.keys, rotationMs: init.keyRotationMs, maxTokenLifetimeMs: init.maxTokenLifetimeMs }, child('signing-keys'))
  const joinTokens = await JoinTokenStore.open({ path: paths.joinTokens }, child('join-tokens'))
  const revocations = await RevocationList.open({ path: paths.revoked }, child('revocations'))
  const audit = await AuditLog.open({ path: paths.audit }, child('audit'))
  return { keys, joinTokens, revocations, audit, close: () => audit.close() }
}
