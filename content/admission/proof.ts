import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { AdmissionProofError, DEFAULT_PROOF_MAX_SKEW_S } from './proof-errors.js'
import { ProofReplayCache } from './replay-cache.js'

export { ProofReplayCache }

/**
 * Proof that a node holds its PeerId's private key: an Ed25519 signature over
 * `pollen-admission:v1:<audience>:<peerId>:<unix seconds>`. The audience (the seed's
 * URL or name) stops a proof made for one seed being replayed to another.
 */
export interface AdmissionProof {
  /** base58btc PeerId (`12D3KooW…`). */
  peerId: string
  /** Unix seconds. */
  timestamp: number
  /** base64url Ed25519 signature over proofMessage(audience, peerId, timestamp). */
  signature: string
}

/** Set-like record of proofs already accepted; a Set works, ProofReplayCache also forgets old entries. */
export interface ReplayCache {
  has(key: string): boolean
  add(key: string): unknown
}

export interface VerifyProofOptions {
  /** The audience this verifier accepts. */
  audience: string
  /** Milliseconds since the epoch. */
  now?: () => number
  maxSkewS?: number
  /** When given, a proof is accepted once. */
  seen?: ReplayCache
}

/** The exact string that is signed. The audience may contain ':'; peerId and timestamp cannot. */
export function proofMessage(audience: string, peerId: string, timestamp: number): string {
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) throw new RangeError('timestamp must be whole unix seconds')
  return `pollen-admission:v1:${audience}:${peerId}:${timestamp}`
}

/** Signs a proof for `audience` at `timestamp` (unix seconds) with a libp2p private key. */
export async function signProof(privateKey: PrivateKey, audience: string, timestamp: number): Promise<AdmissionProof> {
  const peerId = peerIdFromPrivateKey(privateKey).toString()
  const signature = await privateKey.sign(new TextEncoder().encode(proofMessage(audience, peerId, timestamp)))
  return { peerId, timestamp, signature: Buffer.from(signature).toString('base64url') }
}

/**
 * Resolves when `proof` was signed by the key of `proof.peerId` (an Ed25519 PeerId) for
 * this audience within `maxSkewS` of now, and (with `seen`) was not accepted before.
 * Throws AdmissionProofError with reason 'proof-invalid', 'proof-stale' or 'proof-replayed'.
 */
export async function verifyProof(proof: AdmissionProof, options: VerifyProofOptions): Promise<void> {
  const { peerId, timestamp, signature } = proof
  if (typeof peerId !== 'string' || typeof signature !== 'string' || !Number.isSafeInteger(timestamp) || timestamp < 0) {
    throw new AdmissionProofError('proof-invalid', 'malformed proof')
  }
  const nowS = (options.now ?? Date.now)() / 1000
  if (Math.abs(nowS - timestamp) > (options.maxSkewS ?? DEFAULT_PROOF_MAX_SKEW_S)) {
    throw new AdmissionProofError('proof-stale', 'timestamp is too far from the seed clock')
  }
  let id
  try {
    id = peerIdFromString(peerId)
  } catch {
    throw new AdmissionProofError('proof-invalid', 'peerId is not a PeerId')
  }
  if (id.type !== 'Ed25519') throw new AdmissionProofError('proof-invalid', 'peerId is not an Ed25519 PeerId')
  if (!/^[A-Za-z0-9_-]{86}$/.test(signature)) throw new AdmissionProofError('proof-invalid', 'signature is not 64 base64url bytes')
  const message = new TextEncoder().encode(proofMessage(options.audience, id.toString(), timestamp))
  let valid = false
  try {
    valid = await id.publicKey.verify(message, Buffer.from(signature, 'base64url'))
  } catch {
    valid = false
  }
  if (!valid) throw new AdmissionProofError('proof-invalid', 'signature does not verify for this PeerId and audience')
  // Checked and recorded in one synchronous step, only for proofs that verified.
  const key = `${id.toString()}:${timestamp}`
  if (options.seen?.has(key) === true) throw new AdmissionProofError('proof-replayed', 'this proof was already used')
  options.seen?.add(key)
}
