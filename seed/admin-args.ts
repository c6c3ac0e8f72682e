/** The seed's administrative commands' arguments: `join-token create|list|revoke` and `revoke`. */
import { peerIdFromString } from '@libp2p/peer-id'
import { ConfigError } from '../protocol/config-values.js'
import { looksLikeSecret } from './admission/audit-log.js'
import { DEFAULT_JOIN_TOKEN_TTL_MS, DEFAULT_JOIN_TOKEN_USES } from './admission/constants.js'
import { argumentError, parse, positiveDuration, scopeFlag, type Options } from './cli-args.js'

/** Administrative commands, run against a data dir (also while a seed is running on it). */
export type SeedAdminCommand =
  | {
      kind: 'join-token-create'
      dataDir: string
      ttlMs: number
      /** A positive integer, or `Infinity` for unlimited. */
      uses: number
      scope: string[]
    }
  | { kind: 'join-token-list'; dataDir: string }
  | { kind: 'join-token-revoke'; dataDir: string; id: string }
  | {
      kind: 'revoke'
      dataDir: string
      /** Canonical (base58btc) PeerId. */
      peerId: string
      reason?: string
    }

const MAX_JOIN_TOKEN_TTL_MS = 366 * 86_400_000
const MAX_REASON_LENGTH = 500
/** Join-token ids as JoinTokenStore makes them. */
const JOIN_TOKEN_ID = /^[0-9a-f]{16}$/

const DATA_OPTIONS = { data: { type: 'string' }, help: { type: 'boolean', short: 'h' } } as const satisfies Options

/** `join-token create --data DIR [--ttl D] [--uses N|unlimited] [--scope PATTERN]…`. */
export function parseJoinTokenCreate(argv: string[]): SeedAdminCommand | 'help' {
  const { values } = parse(
    argv,
    { ...DATA_OPTIONS, ttl: { type: 'string' }, uses: { type: 'string' }, scope: { type: 'string', multiple: true } } as const,
    false,
  )
  if (values.help === true) return 'help'
  const ttlMs = values.ttl === undefined ? DEFAULT_JOIN_TOKEN_TTL_MS : positiveDuration('ttl', values.ttl)
  if (ttlMs > MAX_JOIN_TOKEN_TTL_MS) throw new ConfigError('ttl', `"${values.ttl}" is longer than 366d`)
  return { kind: 'join-token-create', dataDir: requiredData(values.data), ttlMs, uses: usesFlag(values.uses), scope: scopeFlag(values.scope) }
}

/** `join-token list --data DIR`. */
export function parseJoinTokenList(argv: string[]): SeedAdminCommand | 'help' {
  const { values } = parse(argv, DATA_OPTIONS, false)
  if (values.help === true) return 'help'
  return { kind: 'join-token-list', dataDir: requiredData(values.data) }
}

/** `join-token revoke --data DIR ID`: refuses a pasted token in place of its id, without echoing it. */
export function parseJoinTokenRevoke(argv: string[]): SeedAdminCommand | 'help' {
  const { values, positionals } = parse(argv, DATA_OPTIONS, true)
  if (values.help === true) return 'help'
  const id = onePositional('ID', 'id', positionals)
  // Never echo a secret pasted where the id belongs.
  if (looksLikeSecret(id)) throw argumentError('id', 'give the join token\'s id (from "join-token list"), not the token')
  if (!JOIN_TOKEN_ID.test(id)) throw argumentError('id', `"${id.slice(0, 100)}" is not a join-token id (16 hex digits, from "join-token list")`)
  return { kind: 'join-token-revoke', dataDir: requiredData(values.data), id }
}

/** `revoke --data DIR PEERID [--reason TEXT]`: the PeerId in canonical form. */
export function parseRevoke(argv: string[]): SeedAdminCommand | 'help' {
  const { values, positionals } = parse(argv, { ...DATA_OPTIONS, reason: { type: 'string' } } as const, true)
  if (values.help === true) return 'help'
  const raw = onePositional('PEERID', 'peer-id', positionals)
  let peerId: string
  try {
    peerId = peerIdFromString(raw).toString()
  } catch {
    const shown = looksLikeSecret(raw) ? 'that' : `"${raw.slice(0, 100)}"`
    throw argumentError('peer-id', `${shown} is not a libp2p PeerId (like 12D3KooW…)`)
  }
  const reason = values.reason
  if (reason !== undefined && (reason.length === 0 || reason.length > MAX_REASON_LENGTH || /[\u0000-\u001f\u007f]/.test(reason))) {
    throw new ConfigError('reason', `must be 1 to ${MAX_REASON_LENGTH} characters on one line`)
  }
  return { kind: 'revoke', dataDir: requiredData(values.data), peerId, ...(reason === undefined ? {} : { reason }) }
}

function onePositional(label: string, key: string, positionals: string[]): string {
  if (positionals.length !== 1) throw argumentError(key, `give exactly one ${label}${positionals.length > 1 ? `, not ${positionals.length}` : ''}`)
  return positionals[0] as string
}

function requiredData(value: string | undefined): string {
  if (value === undefined || value === '') throw new ConfigError('data', "is required: give the seed's data directory")
  return value
}

function usesFlag(value: string | undefined): number {
  if (value === undefined) return DEFAULT_JOIN_TOKEN_USES
  if (value === 'unlimited') return Infinity
  const n = Number(value)
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n <= 0) throw new ConfigError('uses', `"${value.slice(0, 100)}" must be a positive whole number or "unlimited"`)
  return n
}
