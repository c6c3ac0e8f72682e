import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { AuditLog, looksLikeSecret, type AuditEvent } from './audit-log.js'

const logger = pino({ level: 'silent' })
const JWT = 'eyJhbGciOiJFZERTQSIsImtpZCI6IngifQ.eyJzdWIiOiIxMkQzS29vVyJ9.c2lnbmF0dXJlLWJ5dGVz'
const JOIN = `pjt_${Buffer.alloc(32, 9).toString('base64url')}`

describe('AuditLog', () => {
  let dir: string
  let path: string
  const t = Date.parse('2025-01-01T00:00:00Z')
  const lines = async (): Promise<Array<Record<string, unknown>>> =>
    (await readFile(path, 'utf8'))
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>)

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pollen-audit-'))
    path = join(dir, 'audit.log')
  })
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('writes one JSON object per event, in order, appending across reopen', async () => {
    const log = await AuditLog.open({ path }, { logger, now: () => t })
    log.record({ event: 'issue', peerId: '12D3KooWabc', jti: 'j1', scope: ['library/*'], remote: '10.0.0.5' })
    log.record({ event: 'pull', peerId: '12D3KooWabc', repository: 'library/nginx' })
    await log.close()
    const again = await AuditLog.open({ path }, { logger, now: () => t })
    again.record({ event: 'refuse', reason: 'proof-stale' })
    await again.close()
    expect(await lines()).toEqual([
      { time: '2025-01-01T00:00:00.000Z', event: 'issue', peerId: '12D3KooWabc', jti: 'j1', scope: ['library/*'], remote: '10.0.0.5' },
      { time: '2025-01-01T00:00:00.000Z', event: 'pull', peerId: '12D3KooWabc', repository: 'library/nginx' },
      { time: '2025-01-01T00:00:00.000Z', event: 'refuse', reason: 'proof-stale' },
    ])
    expect((await stat(path)).mode & 0o777).toBe(0o600)
  })

  it('redacts a JWT-looking or join-token value in any field and drops unknown fields', async () => {
    const log = await AuditLog.open({ path }, { logger, now: () => t })
    const fields = ['peerId', 'subject', 'reason', 'repository', 'jti', 'remote'] as const
    for (const field of fields) {
      log.record({ event: 'refuse', [field]: `bad token ${JWT}` })
      log.record({ event: 'refuse', [field]: JOIN })
    }
    log.record({ event: 'join-token-create', scope: ['library/*', JOIN] })
    log.record({ event: 'refuse', reason: 'Authorization: Bearer abcdefghijklmnop' })
    log.record({ event: 'refuse', authorization: JWT, token: JOIN } as AuditEvent)
    await log.close()
    const text = await readFile(path, 'utf8')
    expect(text).not.toContain(JWT)
    expect(text).not.toContain('eyJ')
    expect(text).not.toContain(JOIN.slice(4))
    expect(text).not.toContain('abcdefghijklmnop')
    const all = await lines()
    expect(all).toHaveLength(2 * fields.length + 3)
    fields.forEach((field, i) => {
      expect(all[2 * i]?.[field]).toBe('[redacted]')
      expect(all[2 * i + 1]?.[field]).toBe('[redacted]')
    })
    expect(all.at(-3)?.scope).toBe('[redacted]')
    expect(all.at(-1)).toEqual({ time: '2025-01-01T00:00:00.000Z', event: 'refuse' })
  })

  it('keeps ordinary PeerIds, digests, hosts and jtis', () => {
    for (const ok of ['12D3KooWGzYQnyEYxFZbq9ry6k7kwcCXLCW7S2F4S6Rzg5WqNYEJ', 'registry.example.com/team-a/app', 'sha256:' + 'a'.repeat(64), '5f0c2d7e-8f7b-4b1e-9c1a-0e6a1b2c3d4e']) {
      expect(looksLikeSecret(ok), ok).toBe(false)
    }
  })

  it('drops events recorded after close instead of throwing', async () => {
    const log = await AuditLog.open({ path }, { logger, now: () => t })
    await log.close()
    expect(() => log.record({ event: 'issue' })).not.toThrow()
    expect(await lines()).toEqual([])
  })
})
