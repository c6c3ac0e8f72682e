import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { describe, expect, it } from 'vitest'
import { AdmissionProofError } from './proof-errors.js'
import { ProofReplayCache, proofMessage, signProof, verifyProof } from './proof.js'

const AUD = 'https://seed.example:5000'
const NOW_S = 1_735_689_600
const now = (): number => NOW_S * 1000

const reasonOf = (p: Promise<unknown>): Promise<unknown> => p.then(() => 'ok', (e: unknown) => (e instanceof AdmissionProofError ? e.reason : e))

describe('admission proofs', () => {
  it('round-trips: a proof signed with the PeerId key verifies for the same audience', async () => {
    const key = await generateKeyPair('Ed25519')
    const proof = await signProof(key, AUD, NOW_S)
    expect(proof.peerId).toBe(peerIdFromPrivateKey(key).toString())
    expect(proof.signature).toMatch(/^[A-Za-z0-9_-]{86}$/)
    await expect(verifyProof(proof, { audience: AUD, now })).resolves.toBeUndefined()
    expect(proofMessage(AUD, proof.peerId, NOW_S)).toBe(`pollen-admission:v1:${AUD}:${proof.peerId}:${NOW_S}`)
  })

  it('refuses a proof made for another audience', async () => {
    const proof = await signProof(await generateKeyPair('Ed25519'), 'https://other-seed:5000', NOW_S)
    const err = await verifyProof(proof, { audience: AUD, now }).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'AdmissionProofError', reason: 'proof-invalid', ociCode: 'UNAUTHORIZED' })
  })

  it('refuses timestamps further than maxSkewS from now, in either direction', async () => {
    const key = await generateKeyPair('Ed25519')
    expect(await reasonOf(verifyProof(await signProof(key, AUD, NOW_S - 61), { audience: AUD, now }))).toBe('proof-stale')
    expect(await reasonOf(verifyProof(await signProof(key, AUD, NOW_S + 61), { audience: AUD, now }))).toBe('proof-stale')
    expect(await reasonOf(verifyProof(await signProof(key, AUD, NOW_S - 60), { audience: AUD, now }))).toBe('ok')
    expect(await reasonOf(verifyProof(await signProof(key, AUD, NOW_S - 5), { audience: AUD, now, maxSkewS: 2 }))).toBe('proof-stale')
  })

  it('accepts a proof once when given a replay cache, also under concurrent use', async () => {
    const proof = await signProof(await generateKeyPair('Ed25519'), AUD, NOW_S)
    const seen = new ProofReplayCache({}, { now })
    const outcomes = await Promise.all(Array.from({ length: 10 }, () => reasonOf(verifyProof(proof, { audience: AUD, now, seen }))))
    expect(outcomes.filter((o) => o === 'ok')).toHaveLength(1)
    expect(outcomes.filter((o) => o === 'proof-replayed')).toHaveLength(9)
    expect(await reasonOf(verifyProof(proof, { audience: AUD, now, seen: new Set<string>() }))).toBe('ok')
  })

  it('refuses a proof that claims another PeerId than the key that signed it', async () => {
    const proof = await signProof(await generateKeyPair('Ed25519'), AUD, NOW_S)
    const other = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    expect(await reasonOf(verifyProof({ ...proof, peerId: other }, { audience: AUD, now }))).toBe('proof-invalid')
  })

  it('does not let a forged proof poison the replay cache for the real PeerId', async () => {
    const key = await generateKeyPair('Ed25519')
    const real = await signProof(key, AUD, NOW_S)
    const forged = { ...(await signProof(await generateKeyPair('Ed25519'), AUD, NOW_S)), peerId: real.peerId }
    const seen = new ProofReplayCache({}, { now })
    expect(await reasonOf(verifyProof(forged, { audience: AUD, now, seen }))).toBe('proof-invalid')
    expect(await reasonOf(verifyProof(real, { audience: AUD, now, seen }))).toBe('ok')
  })

  it('refuses malformed proofs and non-Ed25519 PeerIds', async () => {
    const proof = await signProof(await generateKeyPair('Ed25519'), AUD, NOW_S)
    const secp = peerIdFromPrivateKey(await generateKeyPair('secp256k1')).toString()
    for (const bad of [
      { ...proof, peerId: 'not-a-peer' },
      { ...proof, peerId: secp },
      { ...proof, signature: 'short' },
      { ...proof, signature: proof.signature.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')) },
      { ...proof, timestamp: NOW_S + 0.5 },
    ]) {
      expect(await reasonOf(verifyProof(bad, { audience: AUD, now })), JSON.stringify(bad)).toBe('proof-invalid')
    }
  })

  it('forgets replay entries once their proofs would be stale anyway', () => {
    let t = now()
    const cache = new ProofReplayCache({ maxSkewS: 60, maxEntries: 3 }, { now: () => t })
    cache.add('a')
    expect(cache.has('a')).toBe(true)
    t += 120_001
    expect(cache.has('a')).toBe(false)
    cache.add('b')
    expect(cache.size).toBe(1)
    cache.add('c').add('d').add('e')
    expect(cache.size).toBe(3)
    expect(cache.has('b')).toBe(false)
  })
})
