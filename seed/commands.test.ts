import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { pino } from 'pino'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { admissionPaths } from './admission/admission.js'
import { JoinTokenStore } from './admission/join-tokens.js'
import { RevocationList } from './admission/revocations.js'
import { runCommand } from './commands.js'
import { parseSeedCommand, type SeedAdminCommand } from './config.js'

const MAIN = fileURLToPath(new URL('../dist/seed/main.js', import.meta.url))
const PEER = '12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA'
const logger = pino({ level: 'silent' })

describe('runCommand', () => {
  let dataDir: string
  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'pollen-seed-cmd-'))
  })
  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true })
  })

  /** Parses argv like the CLI and runs the command, capturing its output. */
  async function run(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const cmd = parseSeedCommand([...argv, '--data', dataDir])
    if (cmd === 'help' || cmd.kind === 'serve') throw new Error(`not a command: ${argv.join(' ')}`)
    let stdout = ''
    let stderr = ''
    const code = await runCommand(cmd as SeedAdminCommand, { stdout: { write: (t: string) => (stdout += t) }, stderr: { write: (t: string) => (stderr += t) }, logger })
    return { code, stdout, stderr }
  }

  const tokens = async (): Promise<JoinTokenStore> => JoinTokenStore.open({ path: admissionPaths(dataDir).joinTokens }, { logger })
  const auditLines = async (): Promise<Array<Record<string, unknown>>> =>
    (await readFile(admissionPaths(dataDir).audit, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)

  it('creates a join token, lists it, and lists it as used-up once redeemed', async () => {
    const created = await run('join-token', 'create', '--uses', '1', '--scope', 'team-a/**', '--ttl', '1h')
    expect(created.code).toBe(0)
    expect(created.stdout).toMatch(/^pjt_[A-Za-z0-9_-]{43}\n$/)
    const token = created.stdout.trim()
    expect(created.stderr).toContain('team-a/**')
    expect(created.stderr).not.toContain(token)

    const listed = await run('join-token', 'list')
    expect(listed.code).toBe(0)
    const [header, line, ...rest] = listed.stdout.trimEnd().split('\n')
    expect(header).toMatch(/^ID\s+STATE\s+EXPIRES\s+USES LEFT\s+SCOPE$/)
    expect(rest).toEqual([])
    const [id, state, expires, usesLeft, scope] = line!.split(/\s+/)
    expect(id).toMatch(/^[0-9a-f]{16}$/)
    expect(created.stderr).toContain(id)
    expect([state, usesLeft, scope]).toEqual(['active', '1', 'team-a/**'])
    expect(Date.parse(expires!)).toBeGreaterThan(Date.now() + 59 * 60_000)
    expect(listed.stdout).not.toContain(token)
    expect(listed.stdout).not.toMatch(/[0-9a-f]{64}/)

    await expect((await tokens()).redeem(token)).resolves.toEqual({ id, scope: ['team-a/**'] })
    const after = await run('join-token', 'list')
    expect(after.stdout).toMatch(new RegExp(`^${id}\\s+used-up\\s+\\S+\\s+0\\s+team-a/\\*\\*$`, 'm'))

    const audit = await auditLines()
    expect(audit).toEqual([expect.objectContaining({ event: 'join-token-create', subject: `join-token:${id}`, scope: ['team-a/**'] })])
    expect(await readFile(admissionPaths(dataDir).audit, 'utf8')).not.toContain(token)
  })

  it('lists unlimited tokens and says so when there are none', async () => {
    expect((await run('join-token', 'list')).stdout).toBe('no join tokens\n')
    await run('join-token', 'create', '--uses', 'unlimited')
    expect((await run('join-token', 'list')).stdout).toMatch(/\sactive\s+\S+\s+unlimited\s+\*\*$/m)
  })

  it('revokes a join token so it can no longer be redeemed, and audits it', async () => {
    const token = (await run('join-token', 'create', '--uses', '3')).stdout.trim()
    const id = (await (await tokens()).list())[0]!.id
    const revoked = await run('join-token', 'revoke', id)
    expect(revoked.code).toBe(0)
    expect(revoked.stdout).toContain(id)
    await expect((await tokens()).redeem(token)).rejects.toMatchObject({ name: 'JoinTokenDeniedError', reason: 'unknown' })
    expect((await run('join-token', 'list')).stdout).toBe('no join tokens\n')

    const again = await run('join-token', 'revoke', id)
    expect(again.code).toBe(1)
    expect(again.stderr).toBe(`pollen-seed: no join token ${id} (see "join-token list")\n`)
    expect((await auditLines()).map((e) => [e.event, e.subject])).toEqual([
      ['join-token-create', `join-token:${id}`],
      ['revoke', `join-token:${id}`],
    ])
    expect(await readFile(admissionPaths(dataDir).audit, 'utf8')).not.toContain(token)
  })

  it('revokes a PeerId once and audits it with the reason', async () => {
    const first = await run('revoke', PEER, '--reason', 'node stolen')
    expect(first.code).toBe(0)
    expect(first.stdout).toContain(`Revoked ${PEER} (revocation list version 1)`)
    const list = await RevocationList.open({ path: admissionPaths(dataDir).revoked }, { logger })
    expect(await list.isRevoked(PEER)).toBe(true)
    expect(await list.list()).toEqual([expect.objectContaining({ peerId: PEER, reason: 'node stolen' })])

    const second = await run('revoke', PEER)
    expect(second.code).toBe(0)
    expect(second.stdout).toContain('already revoked')
    expect(await auditLines()).toEqual([expect.objectContaining({ event: 'revoke', peerId: PEER, reason: 'node stolen' })])
  })

  it('fails with exit code 1 when the data directory does not exist', async () => {
    const cmd: SeedAdminCommand = { kind: 'join-token-list', dataDir: join(dataDir, 'missing') }
    let stderr = ''
    const code = await runCommand(cmd, { stdout: { write: () => true }, stderr: { write: (t: string) => (stderr += t) }, logger })
    expect(code).toBe(1)
    expect(stderr).toMatch(/^pollen-seed: data directory .*missing does not exist \(is --data right\?\)\n$/)
  })

  it('fails with exit code 1, naming the file, when admission state is corrupt', async () => {
    await run('join-token', 'list')
    await writeFile(admissionPaths(dataDir).joinTokens, '{not json')
    const result = await run('join-token', 'list')
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('join-tokens.json is unusable')
  })
})

describe('pollen-seed CLI (built)', () => {
  const exec = promisify(execFile)
  let dataDir: string
  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'pollen-seed-cli-'))
  })
  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true })
  })

  it('prints only the join token on stdout and exits 0', async () => {
    const { stdout, stderr } = await exec(process.execPath, [MAIN, 'join-token', 'create', '--data', dataDir, '--uses', '2', '--scope', 'team-a/**'])
    expect(stdout).toMatch(/^pjt_[A-Za-z0-9_-]{43}\n$/)
    expect(stderr).toMatch(/^Created join token [0-9a-f]{16}: .*admits 2 nodes, scope team-a\/\*\*/)
    const [info] = await (await JoinTokenStore.open({ path: admissionPaths(dataDir).joinTokens }, { logger })).list()
    expect(info).toMatchObject({ usesLeft: 2, scope: ['team-a/**'], state: 'active' })
  })

  it('exits 2 with one clear line for an invalid --ttl', async () => {
    const failure = await exec(process.execPath, [MAIN, 'join-token', 'create', '--data', dataDir, '--ttl', 'soon']).then(
      () => expect.unreachable(),
      (err: { code: number; stdout: string; stderr: string }) => err,
    )
    expect(failure.code).toBe(2)
    expect(failure.stdout).toBe('')
    expect(failure.stderr).toBe('pollen-seed: invalid --ttl: "soon" is not a duration (examples: 500ms, 30s, 10m, 1h30m)\n')
  })
})
