import { createReadStream } from 'node:fs'
import { readdir, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { parseDigest, type Digest } from '../protocol/digest.js'
import { DigestVerifier } from '../protocol/digest-verifier.js'

/** What the start-up repair needs of a store whose index is open and not yet in use. */
export interface ReconcileTarget {
  /** The data directory, with `tmp/` and `blobs/<alg>/<xx>/<hex>` in it. */
  dir: string
  blobPath(digest: Digest): string
  /** The index's blob records: digest and size. */
  records(): AsyncIterable<[Digest, { size: number }]>
  /** Removes a blob's record from the index. */
  forget(digest: Digest): Promise<void>
  /** Records a blob file the index lacked, after its bytes hashed to its name. */
  adopt(digest: Digest, size: number): Promise<void>
}

export interface ReconcileOutcome {
  /** Bytes of the blobs the index holds afterwards. */
  bytes: number
  /** Records dropped because their file was missing or had another size. */
  dropped: number
  /** Files the index lacked whose bytes matched their name. */
  adopted: number
  /** Files the index lacked that were not valid blobs (wrong hash, bad name, wrong shard). */
  removed: number
}

/**
 * Start-up repair: deletes temp leftovers, drops index records whose file is missing or has
 * the wrong size (and that file), and adopts (after re-hashing) or deletes files the index lacks.
 */
export async function reconcileStore(target: ReconcileTarget): Promise<ReconcileOutcome> {
  const tmp = join(target.dir, 'tmp')
  for (const name of await readdir(tmp)) await rm(join(tmp, name), { force: true, recursive: true })
  const outcome: ReconcileOutcome = { bytes: 0, dropped: 0, adopted: 0, removed: 0 }
  const indexed = new Set<string>()
  for await (const [digest, record] of target.records()) {
    const st = await stat(target.blobPath(digest)).catch(() => undefined)
    if (st === undefined || st.size !== record.size) {
      await target.forget(digest)
      await rm(target.blobPath(digest), { force: true })
      outcome.dropped++
      continue
    }
    indexed.add(digest.value)
    outcome.bytes += record.size
  }
  const blobs = join(target.dir, 'blobs')
  for (const algorithm of await readdir(blobs)) {
    for (const shard of await readdir(join(blobs, algorithm)).catch(() => [] as string[])) {
      for (const hex of await readdir(join(blobs, algorithm, shard)).catch(() => [] as string[])) {
        const path = join(blobs, algorithm, shard, hex)
        if (indexed.has(`${algorithm}:${hex}`)) continue
        const digest = tryDigest(`${algorithm}:${hex}`)
        if (digest !== undefined && shard === hex.slice(0, 2) && (await hashMatches(path, digest))) {
          const size = (await stat(path)).size
          await target.adopt(digest, size)
          outcome.bytes += size
          outcome.adopted++
        } else {
          await rm(path, { force: true, recursive: true })
          outcome.removed++
        }
      }
    }
  }
  return outcome
}

function tryDigest(value: string): Digest | undefined {
  try {
    return parseDigest(value)
  } catch {
    return undefined
  }
}

async function hashMatches(path: string, digest: Digest): Promise<boolean> {
  const verifier = new DigestVerifier(digest)
  try {
    for await (const chunk of createReadStream(path)) verifier.update(chunk as Buffer)
    verifier.verify()
    return true
  } catch {
    return false
  }
}
