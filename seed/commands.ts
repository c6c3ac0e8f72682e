import { stat } from 'node:fs/promises'
import type { Logger } from 'pino'
import { PollenError } from '../protocol/errors.js'
import { admissionPaths } from './admission/admission.js'
import { AuditLog } from './admission/audit-log.js'
import { JoinTokenStore, type JoinTokenInfo } from './admission/join-tokens.js'
import { RevocationList } from './admission/revocations.js'
import type { SeedAdminCommand } from './config.js'

/** Where a command writes; `process.stdout`/`process.stderr` in the CLI. */
export interface CommandIo {
  stdout: { write(text: string): unknown }
  stderr: { write(text: string): unknown }
  logger: Logger
  /** Milliseconds since the epoch. */
  now?: () => number
}

/**
 * Runs an administrative command against the admission state in `<dataDir>/admission/`,
 * safely beside a running seed (the stores lock their files). Resolves the process exit
 * code: 0 on success, 1 when the data dir is missing, the join token to revoke is unknown,
 * or admission state is unusable (the message goes to stderr). Never prints a join token
 * except the one `join-token create` made, alone on stdout.
 */
export async function runCommand(cmd: SeedAdminCommand, io: CommandIo): Promise<number> {
  const dir = await stat(cmd.dataDir).catch(() => undefined)
  if (dir?.isDirectory() !== true) return fail(io, `data directory ${cmd.dataDir} does not exist (is --data right?)`)
  try {
    switch (cmd.kind) {
      case 'join-token-create':
        return await createJoinToken(cmd, io)
      case 'join-token-list':
        return await listJoinTokens(cmd, io)
      case 'join-token-revoke':
        return await revokeJoinToken(cmd, io)
      case 'revoke':
        return await revokePeer(cmd, io)
    }
  } catch (err) {
    if (err instanceof PollenError) return fail(io, err.message)
    throw err
  }
}

type Command<K extends SeedAdminCommand['kind']> = Extract<SeedAdminCommand, { kind: K }>

async function createJoinToken(cmd: Command<'join-token-create'>, io: CommandIo): Promise<number> {
  const paths = admissionPaths(cmd.dataDir)
  const store = await JoinTokenStore.open({ path: paths.joinTokens }, components(io, 'join-tokens'))
  const created = await store.create({ ttlMs: cmd.ttlMs, uses: cmd.uses, scope: cmd.scope })
  await audited(paths.audit, io, (audit) => audit.record({ event: 'join-token-create', subject: joinTokenSubject(created.id), scope: cmd.scope }))
  io.stdout.write(`${created.token}\n`)
  io.stderr.write(
    `Created join token ${created.id}: expires ${isoSeconds(created.expiresAt)}, ` +
      `admits ${cmd.uses === Infinity ? 'any number of nodes' : cmd.uses === 1 ? '1 node' : `${cmd.uses} nodes`}, ` +
      `scope ${cmd.scope.join(' ')}. The token is shown only once.\n`,
  )
  return 0
}

async function listJoinTokens(cmd: Command<'join-token-list'>, io: CommandIo): Promise<number> {
  const store = await JoinTokenStore.open({ path: admissionPaths(cmd.dataDir).joinTokens }, components(io, 'join-tokens'))
  const tokens = await store.list()
  if (tokens.length === 0) {
    io.stdout.write('no join tokens\n')
    return 0
  }
  io.stdout.write(table([['ID', 'STATE', 'EXPIRES', 'USES LEFT', 'SCOPE'], ...tokens.map(row)]))
  return 0
}

async function revokeJoinToken(cmd: Command<'join-token-revoke'>, io: CommandIo): Promise<number> {
  const paths = admissionPaths(cmd.dataDir)
  const store = await JoinTokenStore.open({ path: paths.joinTokens }, components(io, 'join-tokens'))
  if (!(await store.revoke(cmd.id))) return fail(io, `no join token ${cmd.id} (see "join-token list")`)
  await audited(paths.audit, io, (audit) => audit.record({ event: 'revoke', subject: joinTokenSubject(cmd.id) }))
  io.stdout.write(`Revoked join token ${cmd.id}; it admits no more nodes. Nodes it already admitted keep their admission.\n`)
  return 0
}

async function revokePeer(cmd: Command<'revoke'>, io: CommandIo): Promise<number> {
  const paths = admissionPaths(cmd.dataDir)
  const list = await RevocationList.open({ path: paths.revoked }, components(io, 'revocations'))
  const { version, changed } = await list.revoke(cmd.peerId, cmd.reason)
  if (!changed) {
    io.stdout.write(`${cmd.peerId} was already revoked (revocation list version ${version}).\n`)
    return 0
  }
  await audited(paths.audit, io, (audit) => audit.record({ event: 'revoke', peerId: cmd.peerId, ...(cmd.reason === undefined ? {} : { reason: cmd.reason }) }))
  io.stdout.write(`Revoked ${cmd.peerId} (revocation list version ${version}). Admission tokens it already holds stay valid until they expire.\n`)
  return 0
}

/** Opens the audit log, lets `use` record events, and closes it so they are on disk. */
async function audited(path: string, io: CommandIo, use: (audit: AuditLog) => void): Promise<void> {
  const audit = await AuditLog.open({ path }, components(io, 'audit'))
  try {
    use(audit)
  } finally {
    await audit.close()
  }
}

/** Audit-log subject naming a join token by id (never by the token). */
function joinTokenSubject(id: string): string {
  return `join-token:${id}`
}

function components(io: CommandIo, component: string): { logger: Logger; now?: () => number } {
  return { logger: io.logger.child({ component }), ...(io.now === undefined ? {} : { now: io.now }) }
}

function fail(io: CommandIo, message: string): number {
  io.stderr.write(`pollen-seed: ${message}\n`)
  return 1
}

function row(t: JoinTokenInfo): string[] {
  return [t.id, t.state, isoSeconds(t.expiresAt), t.usesLeft === null ? 'unlimited' : String(t.usesLeft), t.scope.join(' ')]
}

/** Left-aligned columns two spaces apart; the last column is not padded. */
function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ')).join('\n') + '\n'
}

function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z')
}
