import { Writable } from 'node:stream'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { RecentLog, recordingLogger } from './status-log.js'

function sink(): { stream: Writable; lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = []
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString())
      done()
    },
  })
  return { stream, lines: () => chunks.join('').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) }
}

describe('recordingLogger', () => {
  it('records warnings and errors of every child with its component, and still logs every line', () => {
    const out = sink()
    const recent = new RecentLog(10, () => Date.parse('2024-05-01T12:00:00Z'))
    const logger = recordingLogger(pino({ level: 'info' }, out.stream), recent)
    const fill = logger.child({ component: 'fill' })
    fill.info({ digest: 'sha256:aa' }, 'fill started')
    fill.warn({ digest: 'sha256:aa', err: 'peer transfer broke' }, 'fill source failed; resuming')
    logger.child({ component: 'p2p' }).child({ peer: 'x' }).error(new Error('dial failed'))
    logger.error('plain message')
    fill.debug('not enabled')
    expect(recent.entries()).toEqual([
      { time: '2024-05-01T12:00:00.000Z', level: 'warn', component: 'fill', msg: 'fill source failed; resuming', err: 'peer transfer broke' },
      { time: '2024-05-01T12:00:00.000Z', level: 'error', component: 'p2p', msg: 'dial failed' },
      { time: '2024-05-01T12:00:00.000Z', level: 'error', msg: 'plain message' },
    ])
    expect(out.lines().map((l) => [l.component, l.msg])).toEqual([
      ['fill', 'fill started'],
      ['fill', 'fill source failed; resuming'],
      ['p2p', 'dial failed'],
      [undefined, 'plain message'],
    ])
  })

  it('records only what the level lets through, and follows level changes', () => {
    const out = sink()
    const recent = new RecentLog()
    const logger = recordingLogger(pino({ level: 'error' }, out.stream), recent)
    logger.warn('hidden')
    logger.level = 'warn'
    logger.warn('shown')
    expect(recent.entries().map((e) => e.msg)).toEqual(['shown'])
    expect(out.lines().map((l) => l.msg)).toEqual(['shown'])
    expect(logger.isLevelEnabled('warn')).toBe(true)
  })

  it('keeps the last entries only, scrubbed of credentials and clipped', () => {
    const recent = new RecentLog(3)
    const logger = recordingLogger(pino({ level: 'warn' }, sink().stream), recent)
    for (let i = 0; i < 5; i++) logger.warn(`warning ${i}`)
    expect(recent.entries().map((e) => e.msg)).toEqual(['warning 2', 'warning 3', 'warning 4'])
    logger.error({ err: new Error('refused Authorization: Bearer s3cr3t-t0ken') }, `x${'y'.repeat(1000)}`)
    const last = recent.entries().at(-1)!
    expect(last.err).toBe('refused Authorization: Bearer [redacted]')
    expect(last.msg.length).toBe(300)
  })
})
