import { createHash, randomBytes } from 'node:crypto'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { parseDigest } from '../../protocol/digest.js'
import { collect, startRegistry } from './fake-upstream.js'
import { UpstreamBlobSource } from './upstream-blob-source.js'
import { UpstreamRegistry } from './upstream-registry.js'

const logger = pino({ level: process.env.LOG_LEVEL ?? 'silent' })
const BLOB = randomBytes(10_000)
const DIGEST = parseDigest(`sha256:${createHash('sha256').update(BLOB).digest('hex')}`)

const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()?.()
})

async function setup(): Promise<{ source: UpstreamBlobSource; ns: string }> {
  const r = await startRegistry({ blobs: new Map([[DIGEST.value, BLOB]]) })
  cleanup.push(() => r.close())
  const up = new UpstreamRegistry({ ns: r.host, url: r.url }, { logger, sleep: async () => {} })
  cleanup.push(() => up.close())
  return { source: new UpstreamBlobSource(new Map([[r.host, up]])), ns: r.host }
}

describe('UpstreamBlobSource', () => {
  it('opens a blob, from an offset too, at the registry its repository names', async () => {
    const { source, ns } = await setup()
    const repository = { ns, name: 'library/app' }
    const whole = await source.open(DIGEST, { repository })
    expect(whole).toMatchObject({ digest: DIGEST.value, size: BLOB.byteLength })
    expect((await collect(whole.stream)).equals(BLOB)).toBe(true)
    const tail = await source.open(DIGEST, { repository, offset: 9_000 })
    expect((await collect(tail.stream)).equals(BLOB.subarray(9_000))).toBe(true)
  })

  it('stats a blob with its size', async () => {
    const { source, ns } = await setup()
    expect(await source.stat(DIGEST, { repository: { ns, name: 'library/app' } })).toEqual({ digest: DIGEST.value, size: BLOB.byteLength })
  })

  it('throws BlobUnknownError for a blob the upstream lacks', async () => {
    const { source, ns } = await setup()
    const missing = parseDigest(`sha256:${'1'.repeat(64)}`)
    await expect(source.open(missing, { repository: { ns, name: 'library/app' } })).rejects.toMatchObject({ code: 'BlobUnknownError' })
  })

  it('throws RepositoryRequiredError without a repository and RegistryUnknownError for a registry without upstream', async () => {
    const { source } = await setup()
    await expect(source.open(DIGEST)).rejects.toMatchObject({ code: 'RepositoryRequiredError' })
    await expect(source.stat(DIGEST, { repository: { ns: 'ghcr.io', name: 'a/b' } })).rejects.toMatchObject({ code: 'RegistryUnknownError' })
  })
})
