import { createPrivateKey, createPublicKey } from 'node:crypto'
import { mkdir, readdir, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose'
import type { Logger } from 'pino'
import { readTextIfPresent, removeTempFiles, writeFileAtomic } from '../../content/atomic-file.js'
import { DEFAULT_KEY_PREPUBLISH_MS, DEFAULT_KEY_ROTATION_MS, DEFAULT_MAX_TOKEN_LIFETIME_MS, KEY_RETIREMENT_SKEW_MS } from './constants.js'
import { SigningKeyInvalidError } from './errors.js'

export interface SigningKeysInit {
  /** Directory holding one `<kid>.json` per key (`<dataDir>/admission/keys`). */
  dir: string
  rotationMs?: number
  /**
   * The next key is published in the JWKS this long before it starts signing, so that
   * verifiers polling the JWKS know it before they meet its first token. Default: a tenth of
   * `rotationMs`, at most DEFAULT_KEY_PREPUBLISH_MS.
   */
  prepublishMs?: number
  /** Longest lifetime of a token these keys sign; retired keys stay published this long. */
  maxTokenLifetimeMs?: number
}

export interface SigningKeysComponents {
  logger: Logger
  /** Milliseconds since the epoch. */
  now?: () => number
}

/** The key to sign new admission tokens with. */
export interface SigningKey {
  /** RFC 7638 thumbprint of the public JWK. */
  kid: string
  /** Non-extractable Ed25519 key for jose (`alg: 'EdDSA'`). */
  privateKey: CryptoKey
}

/** A published verification key. */
export interface PublicSigningJwk {
  kty: 'OKP'
  crv: 'Ed25519'
  x: string
  kid: string
  alg: 'EdDSA'
  use: 'sig'
}

interface KeyEntry extends SigningKey {
  /** Milliseconds since the epoch. */
  createdAt: number
  /** When the key starts signing; until then it is only published. Milliseconds since the epoch. */
  activatesAt: number
  /** When the key stops (or stopped) signing, in milliseconds since the epoch. */
  retiresAt: number
  privateJwk: JWK
  publicJwk: PublicSigningJwk
  path: string
}

/** On-disk form of one key. */
interface KeyFile {
  format: 1
  kid: string
  alg: 'EdDSA'
  createdAt: string
  /** Absent in files written before keys were pre-published: the key signed from createdAt. */
  activatesAt?: string
  retiresAt: string
  privateJwk: JWK
}

/**
 * The seed's Ed25519 admission-token signing keys, persisted one file per key (mode 0600).
 * One key signs at a time; after `rotationMs` the next takes over. The next key is created
 * and published `prepublishMs` before it signs, so verifiers that poll the JWKS (agents, who
 * keep verifying while the seed is down) know it before its first token. A retired key stays
 * in the JWKS (and on disk) until every token it can have signed has expired, then is deleted.
 */
export class SigningKeys {
  readonly #dir: string
  readonly #rotationMs: number
  readonly #prepublishMs: number
  readonly #publishAfterRetirementMs: number
  readonly #logger: Logger
  readonly #now: () => number
  #keys: KeyEntry[] = []
  #busy: Promise<boolean> | undefined

  private constructor(init: SigningKeysInit, c: SigningKeysComponents) {
    this.#dir = init.dir
    this.#rotationMs = init.rotationMs ?? DEFAULT_KEY_ROTATION_MS
    this.#prepublishMs = init.prepublishMs ?? Math.min(DEFAULT_KEY_PREPUBLISH_MS, Math.floor(this.#rotationMs / 10))
    this.#publishAfterRetirementMs = (init.maxTokenLifetimeMs ?? DEFAULT_MAX_TOKEN_LIFETIME_MS) + KEY_RETIREMENT_SKEW_MS
    this.#logger = c.logger
    this.#now = c.now ?? Date.now
  }

  /**
   * Loads every key in `init.dir` (creating the directory), deletes keys no longer
   * needed, and creates or rotates the current key when due.
   * Throws SigningKeyInvalidError when a key file is unreadable, malformed or inconsistent.
   */
  static async open(init: SigningKeysInit, c: SigningKeysComponents): Promise<SigningKeys> {
    if (!(init.rotationMs === undefined || init.rotationMs > 0)) throw new RangeError('rotationMs must be positive')
    if (!(init.maxTokenLifetimeMs === undefined || init.maxTokenLifetimeMs > 0)) throw new RangeError('maxTokenLifetimeMs must be positive')
    if (!(init.prepublishMs === undefined || (init.prepublishMs >= 0 && init.prepublishMs < (init.rotationMs ?? DEFAULT_KEY_ROTATION_MS)))) {
      throw new RangeError('prepublishMs must be at least 0 and shorter than rotationMs')
    }
    await mkdir(init.dir, { recursive: true, mode: 0o700 })
    await removeTempFiles(init.dir)
    const keys = new SigningKeys(init, c)
    for (const name of (await readdir(init.dir)).sort()) {
      if (name.endsWith('.json')) keys.#keys.push(await keys.#load(join(init.dir, name), name))
    }
    keys.#keys.sort((a, b) => a.activatesAt - b.activatesAt)
    await keys.rotateIfDue()
    return keys
  }

  /**
   * Reads the key that signs now (the newest one already active) from `dir`, and nothing
   * else: it creates, rotates, prunes and deletes nothing, so a second process (`pollen-seed
   * preheat`) can sign beside the seed that owns the directory, with a key that seed knows.
   * Key files are replaced by rename, so each read sees a whole file; one deleted meanwhile
   * is skipped. Returns undefined when the directory holds no active key.
   * Throws SigningKeyInvalidError when a key file is malformed.
   */
  static async readCurrent(dir: string, c: SigningKeysComponents): Promise<SigningKey | undefined> {
    const keys = new SigningKeys({ dir }, c)
    const names = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return []
      throw err
    })
    for (const name of names.sort()) {
      if (!name.endsWith('.json')) continue
      const path = join(dir, name)
      try {
        keys.#keys.push(await keys.#load(path, name))
      } catch (err) {
        if ((await stat(path).catch(() => undefined)) !== undefined) throw err
      }
    }
    keys.#keys.sort((a, b) => a.activatesAt - b.activatesAt)
    const key = keys.#current()
    return key === undefined ? undefined : { kid: key.kid, privateKey: key.privateKey }
  }

  /** Returns the key to sign with now, rotating first when the current one is due. */
  async current(): Promise<SigningKey> {
    await this.rotateIfDue()
    const key = this.#current()
    if (key === undefined) throw new Error('no signing key after rotation')
    return { kid: key.kid, privateKey: key.privateKey }
  }

  /**
   * Creates a new current key when there is none or the current one is older than
   * `rotationMs`, and deletes retired keys past their publication window.
   * Resolves true when a new key was created. Concurrent calls share one rotation.
   */
  rotateIfDue(): Promise<boolean> {
    if (!this.#rotationDue() && !this.#keys.some((k) => this.#expired(k))) return Promise.resolve(false)
    this.#busy ??= this.#rotateAndPrune().finally(() => {
      this.#busy = undefined
    })
    return this.#busy
  }

  /**
   * The public keys verifiers need, newest first: the next key (published ahead of signing),
   * the current key, and retired keys whose tokens may still be valid.
   */
  async jwks(): Promise<{ keys: PublicSigningJwk[] }> {
    await this.rotateIfDue()
    return { keys: this.#keys.filter((k) => !this.#expired(k)).reverse().map((k) => ({ ...k.publicJwk })) }
  }

  /**
   * How long (seconds) a verifier may cache the JWKS: a third of the lead time with which the
   * next key is published, so that every verifier polling it knows the key before it signs;
   * between 1 and 60 s.
   */
  get jwksMaxAgeS(): number {
    return Math.min(60, Math.max(1, Math.floor(this.#prepublishMs / 3000)))
  }

  /** The key that signs now: the newest one already active. */
  #current(): KeyEntry | undefined {
    const now = this.#now()
    return this.#keys.findLast((k) => k.activatesAt <= now)
  }

  /** The key published to take over next, if already created. */
  #next(): KeyEntry | undefined {
    const last = this.#keys.at(-1)
    return last !== undefined && last.activatesAt > this.#now() ? last : undefined
  }

  /** True when there is no signing key, or the current one is within `prepublishMs` of retiring without a successor. */
  #rotationDue(): boolean {
    const cur = this.#current()
    return cur === undefined || (this.#next() === undefined && this.#now() >= cur.retiresAt - this.#prepublishMs)
  }

  /** True for a retired key whose tokens have all expired. */
  #expired(key: KeyEntry): boolean {
    const now = this.#now()
    return key.activatesAt <= now && key !== this.#current() && now >= key.retiresAt + this.#publishAfterRetirementMs
  }

  async #rotateAndPrune(): Promise<boolean> {
    let rotated = false
    if (this.#rotationDue()) {
      const now = this.#now()
      const cur = this.#current()
      // The successor signs once it has been published for prepublishMs, and not before the
      // current key's planned retirement. Without a current key (first start) it signs at once.
      const activatesAt = cur === undefined ? now : Math.max(cur.retiresAt, now + this.#prepublishMs)
      const key = await this.#generate(now, activatesAt)
      await this.#save(key)
      if (cur !== undefined) {
        // Its tokens expire relative to when it really stops signing.
        cur.retiresAt = activatesAt
        await this.#save(cur)
      }
      this.#keys.push(key)
      rotated = true
      this.#logger.info(
        { kid: key.kid, signsFrom: new Date(activatesAt).toISOString(), replaces: cur?.kid, retiresAt: new Date(key.retiresAt).toISOString() },
        'admission signing key created',
      )
    }
    for (const key of this.#keys.filter((k) => this.#expired(k))) {
      await rm(key.path, { force: true })
      this.#keys = this.#keys.filter((k) => k !== key)
      this.#logger.info({ kid: key.kid }, 'retired admission signing key deleted')
    }
    return rotated
  }

  async #generate(now: number, activatesAt: number): Promise<KeyEntry> {
    const pair = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true })
    const privateJwk = await exportJWK(pair.privateKey)
    return this.#entry(privateJwk, { createdAt: now, activatesAt, retiresAt: activatesAt + this.#rotationMs }, '')
  }

  async #entry(privateJwk: JWK, times: { createdAt: number; activatesAt: number; retiresAt: number }, path: string): Promise<KeyEntry> {
    const x = privateJwk.x ?? ''
    const kid = await calculateJwkThumbprint({ kty: 'OKP', crv: 'Ed25519', x })
    const privateKey = (await importJWK({ kty: 'OKP', crv: 'Ed25519', x, d: privateJwk.d }, 'EdDSA', { extractable: false })) as CryptoKey
    return {
      kid,
      privateKey,
      ...times,
      privateJwk: { kty: 'OKP', crv: 'Ed25519', x, d: privateJwk.d },
      publicJwk: { kty: 'OKP', crv: 'Ed25519', x, kid, alg: 'EdDSA', use: 'sig' },
      path: path === '' ? join(this.#dir, `${kid}.json`) : path,
    }
  }

  async #save(key: KeyEntry): Promise<void> {
    const file: KeyFile = {
      format: 1,
      kid: key.kid,
      alg: 'EdDSA',
      createdAt: new Date(key.createdAt).toISOString(),
      activatesAt: new Date(key.activatesAt).toISOString(),
      retiresAt: new Date(key.retiresAt).toISOString(),
      privateJwk: key.privateJwk,
    }
    await writeFileAtomic(key.path, `${JSON.stringify(file, null, 2)}\n`)
  }

  /** Reads and checks one key file; throws SigningKeyInvalidError. */
  async #load(path: string, name: string): Promise<KeyEntry> {
    const text = await readTextIfPresent(path)
    if (text === undefined) throw new SigningKeyInvalidError(path, 'it vanished while loading')
    let file: Partial<KeyFile>
    try {
      file = JSON.parse(text) as Partial<KeyFile>
    } catch (cause) {
      throw new SigningKeyInvalidError(path, 'not JSON', { cause })
    }
    if (typeof file !== 'object' || file === null || file.format !== 1) throw new SigningKeyInvalidError(path, 'not a format 1 key file')
    const createdAt = Date.parse(file.createdAt ?? '')
    const retiresAt = Date.parse(file.retiresAt ?? '')
    const activatesAt = file.activatesAt === undefined ? createdAt : Date.parse(file.activatesAt)
    if (Number.isNaN(createdAt) || Number.isNaN(retiresAt) || Number.isNaN(activatesAt)) {
      throw new SigningKeyInvalidError(path, 'createdAt, activatesAt or retiresAt is not a date')
    }
    const jwk = file.privateJwk
    if (jwk?.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string' || typeof jwk.d !== 'string') {
      throw new SigningKeyInvalidError(path, 'privateJwk is not an Ed25519 private JWK')
    }
    try {
      const derived = createPublicKey(createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', x: jwk.x, d: jwk.d }, format: 'jwk' })).export({ format: 'jwk' })
      if (derived.x !== jwk.x) throw new Error('x does not belong to d')
    } catch (cause) {
      throw new SigningKeyInvalidError(path, `privateJwk is inconsistent: ${(cause as Error).message}`, { cause })
    }
    const entry = await this.#entry(jwk, { createdAt, activatesAt, retiresAt }, path)
    if (file.kid !== entry.kid || name !== `${entry.kid}.json`) throw new SigningKeyInvalidError(path, 'kid does not match the key thumbprint or the file name')
    const mode = (await stat(path)).mode & 0o777
    if ((mode & 0o077) !== 0) this.#logger.warn({ path, mode: mode.toString(8) }, 'admission signing key is readable by others; chmod 600 it')
    return entry
  }
}
