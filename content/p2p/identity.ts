import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import { PollenError } from '../../protocol/errors.js'
import { writeFileAtomic } from '../atomic-file.js'

/** Where the key lives inside the agent's data dir. */
export const PEER_KEY_PATH = join('p2p', 'peer-key')

/**
 * The persisted identity exists but cannot be used (unreadable protobuf, not an
 * Ed25519 key). Never replaced silently: a new key would be a new PeerId, and
 * every admission token bound to the old one would stop working.
 */
export class IdentityKeyInvalidError extends PollenError {
  readonly path: string
  constructor(path: string, reason: string, options?: { cause?: unknown }) {
    super(
      'IdentityKeyInvalidError',
      'INTERNAL',
      `libp2p identity at ${path} is unusable (${reason}); restore it from a backup, or delete it to start with a new PeerId`,
      options,
    )
    this.path = path
  }
}

/**
 * Returns the agent's Ed25519 libp2p key from `<dataDir>/p2p/peer-key`,
 * creating it (mode 0600, temp file + fsync + rename) when the file is absent.
 * Throws IdentityKeyInvalidError when the file exists but is not a valid
 * Ed25519 private key protobuf; other I/O errors propagate unchanged.
 */
export async function loadOrCreateIdentity(dataDir: string): Promise<PrivateKey> {
  const path = join(dataDir, PEER_KEY_PATH)
  const existing = await readIfPresent(path)
  if (existing !== undefined) return decode(path, existing)

  const key = await generateKeyPair('Ed25519')
  await mkdir(join(dataDir, 'p2p'), { recursive: true, mode: 0o700 })
  await writeFileAtomic(path, privateKeyToProtobuf(key))
  return key
}

/** The PeerId derived from a private key. */
export function peerIdOf(key: PrivateKey): PeerId {
  return peerIdFromPrivateKey(key)
}

async function readIfPresent(path: string): Promise<Uint8Array | undefined> {
  try {
    return await readFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

function decode(path: string, bytes: Uint8Array): PrivateKey {
  if (bytes.byteLength === 0) throw new IdentityKeyInvalidError(path, 'the file is empty')
  let key: PrivateKey
  try {
    key = privateKeyFromProtobuf(bytes)
  } catch (cause) {
    throw new IdentityKeyInvalidError(path, `not a libp2p private key protobuf: ${(cause as Error).message}`, { cause })
  }
  if (key.type !== 'Ed25519') throw new IdentityKeyInvalidError(path, `expected an Ed25519 key, found ${key.type}`)
  return key
}

