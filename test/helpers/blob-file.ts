import { createCipheriv, createHash, randomUUID } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { createGzip } from 'node:zlib'

/** A content-addressed file on disk. */
export interface BlobFile {
  path: string
  /** `sha256:<hex>` of the file's bytes. */
  digest: string
  size: number
}

const CHUNK_BYTES = 1024 * 1024

/**
 * Writes `size` deterministic pseudo-random bytes to `dir/sha256-<hex>`: the AES-256-CTR
 * keystream under key sha256("pollen-blob:" + seed), zero IV. Same seed and size give the
 * same bytes (and a shorter blob of the same seed is a prefix of a longer one). Streams to
 * disk in 1 MiB chunks while hashing; well above 300 MB/s on AES-NI hardware.
 */
export async function makeBlobFile(dir: string, size: number, seed: string | number): Promise<BlobFile> {
  checkSize(size)
  const hash = createHash('sha256')
  const tmp = join(dir, `.tmp-${randomUUID()}`)
  try {
    await pipeline(async function* () {
      for (const chunk of pseudoRandomChunks(size, seed)) {
        hash.update(chunk)
        yield chunk
      }
    }, createWriteStream(tmp))
    return await commitBlobFile(dir, tmp, hash.digest('hex'), size)
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  }
}

/** A tar+gzip layer blob: digest and size are of the gzip bytes, diffId of the uncompressed tar. */
export interface TarGzLayerFile extends BlobFile {
  /** `sha256:<hex>` of the uncompressed tar (what a config's rootfs.diff_ids lists). */
  diffId: string
  /** Byte length of the uncompressed tar. */
  tarSize: number
}

const TAR_BLOCK = 512

/**
 * Writes a gzip-compressed ustar archive to `dir/sha256-<hex>` holding a directory entry for
 * `fileName`'s parent (if any) and one regular file `fileName` (mode 0644, uid/gid 0, mtime 0)
 * whose content is the same `size` pseudo-random bytes makeBlobFile(dir, size, seed) writes.
 * Random bytes do not compress, so the blob is about `size` plus a few KiB. Streams to disk
 * (memory stays flat for any size) and hashes both the tar and the gzip bytes on the way.
 * Deterministic for a given seed, size and name (Node's gzip header carries no mtime).
 * Throws a RangeError for a bad size or a name that does not fit a ustar header.
 */
export async function makeTarGzLayerFile(dir: string, size: number, seed: string | number, fileName: string): Promise<TarGzLayerFile> {
  checkSize(size)
  const parent = fileName.includes('/') ? fileName.slice(0, fileName.lastIndexOf('/') + 1) : undefined
  const headers = [...(parent ? [tarHeader(parent, 0, '5', 0o755)] : []), tarHeader(fileName, size, '0', 0o644)]
  const tarHash = createHash('sha256')
  const gzHash = createHash('sha256')
  let tarSize = 0
  let gzSize = 0
  const tmp = join(dir, `.tmp-${randomUUID()}`)
  try {
    await pipeline(
      async function* () {
        const padding = (TAR_BLOCK - (size % TAR_BLOCK)) % TAR_BLOCK
        for (const piece of tarPieces(headers, pseudoRandomChunks(size, seed), Buffer.alloc(padding + 2 * TAR_BLOCK))) {
          tarHash.update(piece)
          tarSize += piece.length
          yield piece
        }
      },
      createGzip({ level: 1 }),
      async function* (gz: AsyncIterable<Buffer>) {
        for await (const chunk of gz) {
          gzHash.update(chunk)
          gzSize += chunk.length
          yield chunk
        }
      },
      createWriteStream(tmp),
    )
    const file = await commitBlobFile(dir, tmp, gzHash.digest('hex'), gzSize)
    return { ...file, diffId: `sha256:${tarHash.digest('hex')}`, tarSize }
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  }
}

/** Headers, then the file content (lazily, chunk by chunk), then padding and the end-of-archive blocks. */
function* tarPieces(headers: Buffer[], content: Iterable<Buffer>, trailer: Buffer): Generator<Buffer> {
  yield* headers
  yield* content
  yield trailer
}

/**
 * One 512-byte ustar header: numeric fields in NUL-terminated octal, the checksum computed
 * with its own field read as eight spaces. Names over 100 bytes are split into prefix/name.
 */
function tarHeader(name: string, size: number, typeflag: '0' | '5', mode: number): Buffer {
  const header = Buffer.alloc(TAR_BLOCK)
  const [prefix, base] = splitTarName(name)
  header.write(base, 0, 100, 'utf8')
  writeOctal(header, mode, 100, 8)
  writeOctal(header, 0, 108, 8) // uid
  writeOctal(header, 0, 116, 8) // gid
  writeOctal(header, size, 124, 12)
  writeOctal(header, 0, 136, 12) // mtime
  header.fill(' ', 148, 156) // checksum placeholder
  header.write(typeflag, 156, 1, 'ascii')
  header.write('ustar\0', 257, 6, 'ascii')
  header.write('00', 263, 2, 'ascii')
  header.write('root', 265, 32, 'ascii') // uname
  header.write('root', 297, 32, 'ascii') // gname
  header.write(prefix, 345, 155, 'utf8')
  let sum = 0
  for (const byte of header) sum += byte
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii')
  return header
}

function splitTarName(name: string): [prefix: string, base: string] {
  if (Buffer.byteLength(name) <= 100) return ['', name]
  const cut = name.lastIndexOf('/', name.length - 2)
  const prefix = name.slice(0, Math.max(cut, 0))
  const base = name.slice(cut + 1)
  if (cut <= 0 || Buffer.byteLength(prefix) > 155 || Buffer.byteLength(base) > 100) {
    throw new RangeError(`tar entry name ${JSON.stringify(name)} does not fit a ustar header`)
  }
  return [prefix, base]
}

function writeOctal(header: Buffer, value: number, offset: number, length: number): void {
  const digits = value.toString(8)
  if (digits.length > length - 1) throw new RangeError(`${value} does not fit a ${length}-byte tar field`)
  header.write(`${digits.padStart(length - 1, '0')}\0`, offset, length, 'ascii')
}

/**
 * The AES-256-CTR keystream under key sha256("pollen-blob:" + seed), zero IV, in chunks of at
 * most 1 MiB, `size` bytes in all.
 */
function* pseudoRandomChunks(size: number, seed: string | number): Generator<Buffer> {
  const key = createHash('sha256').update(`pollen-blob:${seed}`).digest()
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16))
  const zeros = Buffer.alloc(Math.min(CHUNK_BYTES, Math.max(size, 1)))
  for (let left = size; left > 0; left -= zeros.length) {
    yield cipher.update(left >= zeros.length ? zeros : zeros.subarray(0, left))
  }
}

function checkSize(size: number): void {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`blob size ${size} is not a non-negative integer`)
}

async function commitBlobFile(dir: string, tmp: string, hex: string, size: number): Promise<BlobFile> {
  const path = join(dir, `sha256-${hex}`)
  await rename(tmp, path)
  return { path, digest: `sha256:${hex}`, size }
}

/** Writes small in-memory bytes (configs, manifests) as a BlobFile in `dir`. */
export async function writeBlobFile(dir: string, bytes: Buffer): Promise<BlobFile> {
  const hex = createHash('sha256').update(bytes).digest('hex')
  const path = join(dir, `sha256-${hex}`)
  await writeFile(path, bytes)
  return { path, digest: `sha256:${hex}`, size: bytes.length }
}
