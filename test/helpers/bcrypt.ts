import { randomBytes } from 'node:crypto'

/**
 * bcrypt (`$2y$`) for writing htpasswd files that docker-registry 2.8 accepts, without a
 * native or npm dependency. Test-only: it is correct but slow-ish (~2 ms at cost 4), so
 * keep the cost low. Semantics match OpenBSD `$2b$`/`$2y$`: the password is UTF-8 plus a
 * NUL terminator, truncated to 72 bytes.
 *
 * Blowfish's initial P-array and S-boxes are the fractional hex digits of pi; instead of
 * pasting 1042 constants we compute them with BigInt arithmetic (Machin's formula).
 */

const BCRYPT_ALPHABET = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
const P_WORDS = 18
const S_WORDS = 1024
const CIPHERTEXT = 'OrpheanBeholderScryDoubt'

/** Hashes `password` as `$2y$CC$<22 salt chars><31 hash chars>`. `salt` must be 16 bytes. */
export function bcryptHash(password: string, cost = 4, salt: Buffer = randomBytes(16)): string {
  if (!Number.isInteger(cost) || cost < 4 || cost > 31) throw new RangeError(`bcrypt cost ${cost} is outside 4..31`)
  if (salt.length !== 16) throw new RangeError('bcrypt salt must be 16 bytes')
  const key = Buffer.concat([Buffer.from(password, 'utf8'), Buffer.from([0])]).subarray(0, 72)
  const digest = bcryptRaw(key, salt, cost)
  return `$2y$${String(cost).padStart(2, '0')}$${encodeBase64(salt, 16)}${encodeBase64(digest, 23)}`
}

/** Checks `password` against a `$2a$`/`$2b$`/`$2y$` hash. */
export function bcryptVerify(password: string, hash: string): boolean {
  const match = /^\$2[aby]\$(\d\d)\$([./A-Za-z0-9]{22})[./A-Za-z0-9]{31}$/.exec(hash)
  if (!match) return false
  const salt = decodeBase64(match[2]!, 16)
  return bcryptHash(password, Number(match[1]), salt).slice(4) === hash.slice(4)
}

function bcryptRaw(key: Buffer, salt: Buffer, cost: number): Buffer {
  const { p, s } = initialState()
  expandKey(p, s, key, salt)
  for (let round = 0, rounds = 2 ** cost; round < rounds; round++) {
    expandKey(p, s, key, null)
    expandKey(p, s, salt, null)
  }
  const words = new Uint32Array(6)
  for (let i = 0; i < 6; i++) words[i] = Buffer.from(CIPHERTEXT, 'latin1').readUInt32BE(i * 4)
  const lr = new Uint32Array(2)
  for (let i = 0; i < 6; i += 2) {
    lr[0] = words[i]!
    lr[1] = words[i + 1]!
    for (let j = 0; j < 64; j++) encipher(p, s, lr)
    words[i] = lr[0]!
    words[i + 1] = lr[1]!
  }
  const out = Buffer.alloc(24)
  for (let i = 0; i < 6; i++) out.writeUInt32BE(words[i]!, i * 4)
  return out.subarray(0, 23)
}

/** Blowfish key schedule with an optional salt mixed into the data stream (EksBlowfish's ExpandKey). */
function expandKey(p: Uint32Array, s: Uint32Array, key: Buffer, salt: Buffer | null): void {
  const keyPos = { i: 0 }
  for (let i = 0; i < P_WORDS; i++) p[i] = p[i]! ^ streamWord(key, keyPos)
  const saltPos = { i: 0 }
  const lr = new Uint32Array(2)
  const refill = (target: Uint32Array, index: number): void => {
    if (salt) {
      lr[0] = lr[0]! ^ streamWord(salt, saltPos)
      lr[1] = lr[1]! ^ streamWord(salt, saltPos)
    }
    encipher(p, s, lr)
    target[index] = lr[0]!
    target[index + 1] = lr[1]!
  }
  for (let i = 0; i < P_WORDS; i += 2) refill(p, i)
  for (let i = 0; i < S_WORDS; i += 2) refill(s, i)
}

function streamWord(data: Buffer, pos: { i: number }): number {
  let word = 0
  for (let k = 0; k < 4; k++) {
    word = ((word << 8) | data[pos.i]!) >>> 0
    pos.i = (pos.i + 1) % data.length
  }
  return word
}

function encipher(p: Uint32Array, s: Uint32Array, lr: Uint32Array): void {
  let l = lr[0]! ^ p[0]!
  let r = lr[1]!
  for (let i = 1; i <= 16; i += 2) {
    r ^= feistel(s, l) ^ p[i]!
    l ^= feistel(s, r) ^ p[i + 1]!
  }
  lr[0] = (r ^ p[17]!) >>> 0
  lr[1] = l >>> 0
}

function feistel(s: Uint32Array, x: number): number {
  const a = s[x >>> 24]!
  const b = s[256 + ((x >>> 16) & 0xff)]!
  const c = s[512 + ((x >>> 8) & 0xff)]!
  const d = s[768 + (x & 0xff)]!
  return ((((a + b) >>> 0) ^ c) + d) >>> 0
}

/** Fresh Blowfish state: P (18 words) then S0..S3 (4 x 256 words), the hex digits of pi after "3.". */
function initialState(): { p: Uint32Array; s: Uint32Array } {
  const words = piFractionWords(P_WORDS + S_WORDS)
  return { p: words.slice(0, P_WORDS), s: words.slice(P_WORDS) }
}

/** The first `count` 32-bit words of pi's fractional part, via pi = 16 atan(1/5) - 4 atan(1/239). */
function piFractionWords(count: number): Uint32Array {
  const bits = BigInt(count * 32 + 64)
  const one = 1n << bits
  const atanInv = (x: bigint): bigint => {
    let sum = 0n
    let power = one / x
    const x2 = x * x
    for (let n = 1n, sign = 1n; power !== 0n; n += 2n, sign = -sign) {
      sum += (sign * power) / n
      power /= x2
    }
    return sum
  }
  const pi = 16n * atanInv(5n) - 4n * atanInv(239n)
  const fraction = (pi - 3n * one) >> 64n
  const words = new Uint32Array(count)
  for (let i = 0; i < count; i++) words[i] = Number((fraction >> BigInt((count - 1 - i) * 32)) & 0xffffffffn)
  return words
}

function encodeBase64(data: Buffer, length: number): string {
  let out = ''
  let i = 0
  while (i < length) {
    const c1 = data[i++]!
    out += BCRYPT_ALPHABET[c1 >> 2]
    let acc = (c1 & 0x03) << 4
    if (i >= length) { out += BCRYPT_ALPHABET[acc]; break }
    const c2 = data[i++]!
    out += BCRYPT_ALPHABET[acc | (c2 >> 4)]
    acc = (c2 & 0x0f) << 2
    if (i >= length) { out += BCRYPT_ALPHABET[acc]; break }
    const c3 = data[i++]!
    out += BCRYPT_ALPHABET[acc | (c3 >> 6)]
    out += BCRYPT_ALPHABET[c3 & 0x3f]
  }
  return out
}

function decodeBase64(text: string, length: number): Buffer {
  const out = Buffer.alloc(length)
  let bitBuffer = 0
  let bitCount = 0
  let o = 0
  for (const ch of text) {
    const v = BCRYPT_ALPHABET.indexOf(ch)
    if (v < 0) throw new Error(`invalid bcrypt base64 character ${JSON.stringify(ch)}`)
    bitBuffer = (bitBuffer << 6) | v
    bitCount += 6
    if (bitCount >= 8) {
      bitCount -= 8
      if (o < length) out[o++] = (bitBuffer >> bitCount) & 0xff
    }
  }
  return out
}
