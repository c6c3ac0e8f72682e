/**
 * Checks a content store on disk (content/store.ts layout: `blobs/<alg>/<xx>/<hex>`, `tmp/`,
 * LevelDB `index/` with `blob:<digest>` records) from outside the process that owns it.
 */
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { cp, mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'

export interface StoreCheck {
  /** Files left in `tmp/`. */
  tempFiles: string[]
  /** Committed blob files (all of them hashed). */
  files: number
  bytes: number
  /** digest → size, of every file under blobs/. */
  fileSizes: Map<string, number>
  /** digest → record, of every `blob:` key in the index. */
  index: Map<string, { size: number }>
  /** Files whose content does not hash to their name. */
  badFiles: string[]
  /** Index records without a file, files without a record, records whose size differs from the file's. */
  indexOnly: string[]
  filesOnly: string[]
  sizeMismatches: string[]
}

/**
 * Hashes every blob file under `contentDir` and compares the files with the index. With
 * `live`, the index is read from a copy (the running agent holds LevelDB's lock; and opening
 * a LevelDB after a crash recovers it, rewriting its files, which the agent's own start-up
 * should meet as the kill left them); the copy replays the write-ahead log, so it shows what
 * the agent had written so far.
 */
export async function checkStore(contentDir: string, options: { live?: boolean } = {}): Promise<StoreCheck> {
  const files = new Map<string, number>()
  const index = new Map<string, { size: number }>()
  const check: StoreCheck = { tempFiles: await readdir(join(contentDir, 'tmp')), files: 0, bytes: 0, fileSizes: files, index, badFiles: [], indexOnly: [], filesOnly: [], sizeMismatches: [] }
  for (const algorithm of await readdir(join(contentDir, 'blobs'))) {
    for (const shard of await readdir(join(contentDir, 'blobs', algorithm))) {
      for (const hex of await readdir(join(contentDir, 'blobs', algorithm, shard))) {
        const path = join(contentDir, 'blobs', algorithm, shard, hex)
        const hash = createHash(algorithm)
        for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
        if (hash.digest('hex') !== hex || shard !== hex.slice(0, 2)) check.badFiles.push(`${algorithm}:${hex}`)
        const size = (await stat(path)).size
        files.set(`${algorithm}:${hex}`, size)
        check.files++
        check.bytes += size
      }
    }
  }
  let indexDir = join(contentDir, 'index')
  let copy: string | undefined
  if (options.live === true) {
    copy = await mkdtemp(join(tmpdir(), 'pollen-index-copy-'))
    await cp(indexDir, join(copy, 'index'), { recursive: true })
    await rm(join(copy, 'index', 'LOCK'), { force: true })
    indexDir = join(copy, 'index')
  }
  const db = new Level<string, { size: number }>(indexDir, { valueEncoding: 'json' })
  try {
    await db.open()
    for await (const [key, record] of db.iterator({ gte: 'blob:', lt: 'blob:\xff' })) {
      const digest = key.slice('blob:'.length)
      index.set(digest, record)
      const size = files.get(digest)
      if (size === undefined) check.indexOnly.push(digest)
      else if (size !== record.size) check.sizeMismatches.push(`${digest}: index ${record.size}, file ${size}`)
    }
    for (const digest of files.keys()) if (!index.has(digest)) check.filesOnly.push(digest)
  } finally {
    await db.close().catch(() => {})
    if (copy !== undefined) await rm(copy, { recursive: true, force: true })
  }
  return check
}
