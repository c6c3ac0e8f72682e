import { pino } from 'pino'
import { request } from 'undici'
import { afterEach, describe, expect, it } from 'vitest'
import type { CachingSource } from './caching-source.js'
import type { ManifestService } from './manifest-service.js'
import { closeServers, listen } from './ops-server.js'
import { createRegistryServer } from './registry-server.js'

const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()?.()
})

describe('the registry server, when no source answers in time', () => {
  it('answers a blob request 503 UNAVAILABLE (containerd then tries its next host), not 500 INTERNAL', async () => {
    // A cache whose fill never learns the blob's size: acquire waits until the request's signal aborts.
    const blobs = {
      acquire: (_digest: unknown, options: { signal?: AbortSignal }) =>
        new Promise((_resolve, reject) => options.signal?.addEventListener('abort', () => reject(options.signal!.reason), { once: true })),
    } as unknown as CachingSource
    const s = createRegistryServer(
      { defaultNs: 'docker.io', blobOpenDeadlineMs: 200 },
      { blobs, manifests: {} as ManifestService, logger: pino({ level: 'silent' }), health: () => false },
    )
    const url = await listen(s, '127.0.0.1', 0)
    cleanup.push(() => closeServers(s))
    const res = await request(`${url}/v2/team/app/blobs/sha256:${'b'.repeat(64)}`, { signal: AbortSignal.timeout(10_000) })
    expect(res.statusCode).toBe(503)
    const body = (await res.body.json()) as { errors: Array<{ code: string }> }
    expect(body.errors[0]!.code).toBe('UNAVAILABLE')
  })

  it('answers a manifest request 503 UNAVAILABLE when the manifest deadline passes, not 500 INTERNAL', async () => {
    // A manifest service whose sources never answer: get rejects with the deadline's TimeoutError.
    const manifests = {
      get: (_repository: unknown, _reference: unknown, options: { signal?: AbortSignal }) =>
        new Promise((_resolve, reject) => options.signal?.addEventListener('abort', () => reject(options.signal!.reason), { once: true })),
    } as unknown as ManifestService
    const s = createRegistryServer(
      { defaultNs: 'docker.io', manifestDeadlineMs: 200 },
      { blobs: {} as CachingSource, manifests, logger: pino({ level: 'silent' }), health: () => false },
    )
    const url = await listen(s, '127.0.0.1', 0)
    cleanup.push(() => closeServers(s))
    const res = await request(`${url}/v2/team/app/manifests/v1`, { signal: AbortSignal.timeout(10_000) })
    expect(res.statusCode).toBe(503)
    const body = (await res.body.json()) as { errors: Array<{ code: string; message: string }> }
    expect(body.errors[0]).toMatchObject({ code: 'UNAVAILABLE', message: 'no source answered for the manifest within 0.2 s' })
  })
})
