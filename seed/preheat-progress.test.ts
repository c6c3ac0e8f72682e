import { describe, expect, it } from 'vitest'
import { PlainProgress, TtyProgress, blobLine, imageLine, shortDigest, summaryLine, ttyLine, type ImageState } from './preheat-progress.js'

const MiB = 1024 * 1024
const DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`
const T0 = Date.parse('2025-01-01T00:00:00Z')

function state(over: Partial<ImageState> = {}): ImageState {
  return { image: '127.0.0.1:5055/team/app:v1', blobsDone: 0, bytesDone: 0, startedAt: T0, ...over }
}

function sink(): { text: string; write(t: string): void } {
  return {
    text: '',
    write(t: string) {
      this.text += t
    },
  }
}

describe('preheat progress formatting', () => {
  it('shows an image as resolving until its totals are known', () => {
    expect(ttyLine(state(), 30, T0 + 500)).toBe('127.0.0.1:5055/team/app:v1      resolving…')
  })

  it('draws a bar, percent, bytes done of total, blobs done of total and the rate', () => {
    const line = ttyLine(state({ blobs: 4, bytes: 4 * MiB, blobsDone: 2, bytesDone: 2 * MiB }), 26, T0 + 1000)
    expect(line).toBe('127.0.0.1:5055/team/app:v1  [##########----------]  50%  2.0 MiB/4.0 MiB  2/4 blobs  2.1 MB/s')
  })

  it('says done with the time taken, and FAILED with the reason', () => {
    const done = ttyLine(state({ blobs: 1, bytes: MiB, blobsDone: 1, bytesDone: MiB, finishedAt: T0 + 2000 }), 26, T0 + 9000)
    expect(done).toContain('[####################] 100%')
    expect(done).toContain('done in 2.0s, 0.5 MB/s')
    expect(ttyLine(state({ error: 'HTTP 404 MANIFEST_UNKNOWN' }), 10, T0)).toBe('127.0.0.1…  FAILED: HTTP 404 MANIFEST_UNKNOWN')
  })

  it('writes plain lines for a blob, a finished image, and a summary naming failures', () => {
    expect(shortDigest(DIGEST)).toBe('sha256:0123456789ab')
    expect(blobLine('x/app:v1', { digest: DIGEST, size: 3 * MiB + 7, ms: 120 }, 2, 4)).toBe('x/app:v1: blob sha256:0123456789ab 3.0 MiB in 120ms (2/4)')
    expect(imageLine(state({ blobsDone: 1, bytesDone: 1, finishedAt: T0 + 400 }), T0)).toBe('127.0.0.1:5055/team/app:v1: preheated 1 blob, 1 B in 400ms (0.0 MB/s)')
    const summary = summaryLine([state({ blobsDone: 3, bytesDone: 10 * MiB }), state({ image: 'gone/app:v1', error: 'HTTP 404' })], 2000)
    expect(summary).toBe('preheated 1 of 2 images: 3 blobs, 10 MiB in 2.0s (5.2 MB/s); failed: gone/app:v1')
  })

  it('plain progress prints one line per blob and a summary, and failures on stderr', () => {
    const out = sink()
    const err = sink()
    let now = T0
    const p = new PlainProgress({ images: ['a:v1', 'b:v1'], out, err, now: () => now })
    p.resolved('a:v1', { blobs: 2, bytes: 2 * MiB })
    p.bytes('a:v1', MiB)
    p.blobDone('a:v1', { digest: DIGEST, size: MiB, ms: 10 })
    p.bytes('a:v1', MiB)
    p.blobDone('a:v1', { digest: DIGEST, size: MiB, ms: 10 })
    now += 1000
    p.imageDone('a:v1', { ok: true })
    p.imageDone('b:v1', { ok: false, error: 'manifest b:v1: HTTP 404' })
    p.finish()
    expect(out.text.split('\n')).toEqual([
      'a:v1: 2 blobs, 2.0 MiB to preheat',
      'a:v1: blob sha256:0123456789ab 1.0 MiB in 10ms (1/2)',
      'a:v1: blob sha256:0123456789ab 1.0 MiB in 10ms (2/2)',
      'a:v1: preheated 2 blobs, 2.0 MiB in 1.0s (2.1 MB/s)',
      'preheated 1 of 2 images: 2 blobs, 2.0 MiB in 1.0s (2.1 MB/s); failed: b:v1',
      '',
    ])
    expect(err.text).toBe('pollen-seed: preheat failed for b:v1: manifest b:v1: HTTP 404\n')
  })

  it('tty progress redraws one line per image in place', () => {
    const out = sink()
    const p = new TtyProgress({ images: ['a:v1', 'bb:v1'], out, err: sink(), now: () => T0, intervalMs: 60_000 })
    p.resolved('a:v1', { blobs: 1, bytes: 100 })
    p.render()
    p.finish()
    const frames = out.text.split('\x1b[2A')
    expect(frames).toHaveLength(3)
    expect(frames[0]).toBe('\r\x1b[2Ka:v1   resolving…\n\r\x1b[2Kbb:v1  resolving…\n')
    expect(frames[1]).toContain('a:v1   [--------------------]   0%  0 B/100 B  0/1 blobs')
    expect(out.text.endsWith('preheated 2 of 2 images: 0 blobs, 0 B in 0ms (0.0 MB/s)\n')).toBe(true)
  })

  it('tty progress cuts lines to the terminal width, and takes a width of 0 (some pseudo-terminals) as unknown', () => {
    const image = '127.0.0.1:5055/team/with-a-long-name:v1'
    const narrow = sink()
    new TtyProgress({ images: [image], out: narrow, err: sink(), now: () => T0, columns: 30, intervalMs: 60_000 }).finish()
    expect(narrow.text.split('\n')[0]).toBe(`\r\x1b[2K${image.slice(0, 29)}`)
    const unknown = sink()
    new TtyProgress({ images: [image], out: unknown, err: sink(), now: () => T0, columns: 0, intervalMs: 60_000 }).finish()
    expect(unknown.text.split('\n')[0]).toBe(`\r\x1b[2K${image}  resolving…`)
  })
})
