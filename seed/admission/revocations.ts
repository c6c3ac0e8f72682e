import { mkdir, stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Logger } from 'pino'
import { readTextIfPresent, writeFileAtomic } from '../../content/atomic-file.js'
import { AdmissionStateInvalidError, PeerIdInvalidError } from './errors.js'
import { FileLock } from './file-lock.js'

export interface RevocationListInit {
  /** The JSON state file (`<dataDir>/admission/revoked.json`). */
  path: string
}

export interface RevocationListComponents {
  logger: Logger
  /** Milliseconds since the epoch. */
  now?: () => number
}

export interface RevocationEntry {
  peerId: string
  /** Milliseconds since the epoch. */
  revokedAt: number
  reason?: string
}

export interface RevocationSnapshot {
  /** Grows by one with every revocation; agents poll it to learn of changes. */
  version: number
  entries: RevocationEntry[]
}

interface StateFile {
  format: 1
  version: number
  revoked: Array<{ peerId: string; revokedAt: string; reason?: string }>
}

/**
 * PeerIds the seed no longer admits, persisted in one JSON file. Reads reload the file
 * when another process (the `pollen-seed revoke` CLI) replaced it; writes hold a FileLock.
 */
export class RevocationList {
  readonly #path: string
  readonly #lock: FileLock
  readonly #logger: Logger
  readonly #now: () => number
  #cache: { stamp: string; snapshot: RevocationSnapshot; peers: Set<string> } | undefined

  private constructor(init: RevocationListInit, c: RevocationListComponents) {
    this.#path = init.path
    this.#lock = new FileLock({ path: `${init.path}.lock` })
    this.#logger = c.logger
    this.#now = c.now ?? Date.now
  }

  /** Opens the list, creating its directory. Throws AdmissionStateInvalidError when the file is corrupt. */
  static async open(init: RevocationListInit, c: RevocationListComponents): Promise<RevocationList> {
    await mkdir(dirname(init.path), { recursive: true, mode: 0o700 })
    const list = new RevocationList(init, c)
    await list.snapshot()
    return list
  }

  /**
   * Revokes a PeerId (canonicalised to base58btc). Revoking a revoked PeerId changes nothing.
   * Resolves the list's version afterwards. Throws PeerIdInvalidError.
   */
  async revoke(peerId: string, reason?: string): Promise<{ version: number; changed: boolean }> {
    const canonical = canonicalPeerId(peerId)
    if (canonical === undefined) throw new PeerIdInvalidError(peerId)
    const result = await this.#lock.run(async () => {
      const state = await this.#readFile()
      if (state.revoked.some((r) => r.peerId === canonical)) return { version: state.version, changed: false }
      state.version += 1
      state.revoked.push({ peerId: canonical, revokedAt: new Date(this.#now()).toISOString(), ...(reason === undefined ? {} : { reason }) })
      await writeFileAtomic(this.#path, `${JSON.stringify(state, null, 2)}\n`)
      return { version: state.version, changed: true }
    })
    await this.snapshot()
    if (result.changed) this.#logger.info({ peerId: canonical, reason, version: result.version }, 'peer revoked')
    return result
  }

  /** True when the PeerId is revoked. Strings that are not PeerIds are not revoked (they cannot be admitted anyway). */
  async isRevoked(peerId: string): Promise<boolean> {
    await this.snapshot()
    return this.isRevokedCached(peerId)
  }

  /**
   * The same question answered from the last read of the file, without I/O, for synchronous
   * callers such as AdmissionVerifier's `revoked`. Keep it fresh by calling snapshot() periodically.
   */
  isRevokedCached(peerId: string): boolean {
    const canonical = canonicalPeerId(peerId)
    return canonical !== undefined && (this.#cache?.peers.has(canonical) ?? false)
  }

  async list(): Promise<RevocationEntry[]> {
    return (await this.snapshot()).entries
  }

  async version(): Promise<number> {
    return (await this.snapshot()).version
  }

  /** The version and entries, consistent with each other, re-read when the file changed. */
  async snapshot(): Promise<RevocationSnapshot> {
    const st = await stat(this.#path).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined
      throw err
    })
    const stamp = st === undefined ? 'absent' : `${st.ino}:${st.size}:${st.mtimeMs}`
    if (this.#cache?.stamp !== stamp) {
      const state = await this.#readFile()
      const entries = state.revoked.map((r) => ({ peerId: r.peerId, revokedAt: Date.parse(r.revokedAt), ...(r.reason === undefined ? {} : { reason: r.reason }) }))
      this.#cache = { stamp, snapshot: { version: state.version, entries }, peers: new Set(entries.map((e) => e.peerId)) }
    }
    const { version, entries } = this.#cache.snapshot
    return { version, entries: entries.map((e) => ({ ...e })) }
  }

  async #readFile(): Promise<StateFile> {
    const text = await readTextIfPresent(this.#path)
    if (text === undefined) return { format: 1, version: 0, revoked: [] }
    let state: StateFile
    try {
      state = JSON.parse(text) as StateFile
    } catch (cause) {
      throw new AdmissionStateInvalidError(this.#path, 'not JSON', { cause })
    }
    const valid =
      state?.format === 1 &&
      Number.isSafeInteger(state.version) &&
      Array.isArray(state.revoked) &&
      state.revoked.every((r) => typeof r?.peerId === 'string' && !Number.isNaN(Date.parse(r.revokedAt)) && (r.reason === undefined || typeof r.reason === 'string'))
    if (!valid) throw new AdmissionStateInvalidError(this.#path, 'not a format 1 revocation file')
    return state
  }
}

function canonicalPeerId(value: string): string | undefined {
  try {
    return peerIdFromString(value).toString()
  } catch {
    return undefined
  }
}
