import { PollenError } from '../../protocol/errors.js'

/** How long a proof of key possession stays fresh, either side of now. */
export const DEFAULT_PROOF_MAX_SKEW_S = 60
/** Entries the proof replay cache holds at most; the oldest go first. */
export const DEFAULT_REPLAY_CACHE_ENTRIES = 100_000

export type ProofDenial = 'proof-invalid' | 'proof-stale' | 'proof-replayed'

/** An enrollment's proof that the agent holds its PeerId's key was refused. */
export class AdmissionProofError extends PollenError {
  readonly reason: ProofDenial
  constructor(reason: ProofDenial, message: string) {
    super('AdmissionProofError', 'UNAUTHORIZED', `${reason}: ${message}`)
    this.reason = reason
  }
}
