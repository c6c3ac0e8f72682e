import { describe, expect, it } from 'vitest'
import { formatStatus, type StatusInput } from './status-format.js'
import type { AgentStatusReport } from './status-report.js'

const NOW = Date.parse('2025-06-01T12:00:00Z')
const GiB = 2 ** 30
const iso = (msBefore: number): string => new Date(NOW - msBefore).toISOString()

function report(over: Partial<AgentStatusReport> = {}): AgentStatusReport {
  return {
    schema: 1,
    version: '0.1.0',
    peerId: '12D3KooWExample',
    mode: 'seed',
    uptimeSeconds: 3 * 3600 + 12 * 60,
    seed: { url: 'http://seed.internal:5000', reachable: true, checkedAt: iso(4000), lastError: null },
    token: { enrolled: true, valid: true, expiresAt: new Date(NOW + 7 * 60_000 + 12_000).toISOString() },
    cache: { bytes: 3.2 * GiB, capacity: 10 * GiB },
    peers: { enabled: true, connected: 14, routingTable: 20 },
    lastErrors: [],
    ...over,
  }
}

describe('pollen-agent status formatting', () => {
  it('prints an aligned table of a healthy enrolled agent', () => {
    expect(formatStatus(report(), { ready: true, failed: [] }, 'http://127.0.0.1:5050', NOW)).toBe(
      [
        'Agent:       http://127.0.0.1:5050 (pollen 0.1.0, up 3h12m)',
        'Ready:       yes',
        'Mode:        seed',
        'PeerId:      12D3KooWExample',
        'Seed:        http://seed.internal:5000, reachable',
        'Token:       valid, expires in 7m12s',
        'Cache:       3.2 GiB of 10 GiB (32%)',
        'Peers:       14 connected, 20 in routing table',
        'Last errors: none',
        '',
      ].join('\n'),
    )
  })

  it('says why an agent is not ready, an unreachable seed with its last error, an expired token and the last errors', () => {
    const text = formatStatus(
      report({
        mode: 'cache-only',
        seed: { url: 'http://seed.internal:5000', reachable: false, checkedAt: iso(2000), lastError: { time: iso(65_000), message: 'connect ECONNREFUSED 10.0.0.5:5000' } },
        token: { enrolled: true, valid: false, expiresAt: iso(3 * 60_000) },
        lastErrors: [
          { time: iso(125_000), level: 'error', component: 'fill', msg: 'fill failed', err: 'content does not match digest' },
          { time: iso(500), level: 'warn', msg: 'seed unreachable' },
        ],
      }),
      { ready: false, failed: ['admission: no valid admission token', 'seed: unreachable'] },
      'http://127.0.0.1:5050',
      NOW,
    )
    expect(text).toContain('Ready:       no (admission: no valid admission token; seed: unreachable)\n')
    expect(text).toContain('Mode:        cache-only (the seed does not answer: serving from cache and peers)\n')
    expect(text).toContain('Seed:        http://seed.internal:5000, unreachable (connect ECONNREFUSED 10.0.0.5:5000, 1m05s ago)\n')
    expect(text).toContain('Token:       expired 3m00s ago\n')
    expect(text.endsWith('Last errors:\n  2m05s ago  error  fill: fill failed: content does not match digest\n  just now   warn   seed unreachable\n')).toBe(true)
  })

  it('describes a standalone agent without p2p or admission', () => {
    const text = formatStatus(
      report({ mode: 'standalone', peerId: null, seed: null, token: { enrolled: false, valid: false, expiresAt: null }, peers: { enabled: false, connected: 0, routingTable: 0 }, cache: { bytes: 512, capacity: 10 * GiB } }),
      { ready: true, failed: [] },
      'http://127.0.0.1:5050',
      NOW,
    )
    expect(text).toContain('Mode:        standalone (no seed: pulls from registries itself)\n')
    expect(text).toContain('PeerId:      none (no p2p, not enrolled)\n')
    expect(text).toContain('Seed:        none (standalone)\n')
    expect(text).toContain('Token:       not used (standalone)\n')
    expect(text).toContain('Cache:       512 B of 10 GiB (0%)\n')
    expect(text).toContain('Peers:       p2p off\n')
  })

  it('shows a reachable seed that failed before, and a token being enrolled', () => {
    const text = formatStatus(
      report({ seed: { url: 'http://s:5000', reachable: true, checkedAt: iso(1000), lastError: { time: iso(3_600_000 + 60_000), message: 'timeout' } }, token: { enrolled: true, valid: false, expiresAt: null } }),
      undefined,
      'http://a:5050',
      NOW,
    )
    expect(text).toContain('Seed:        http://s:5000, reachable (last error: timeout, 1h01m ago)\n')
    expect(text).toContain('Token:       none yet (enrolling)\n')
    expect(text).toContain('Ready:       unknown\n')
  })

  it('prints unknown for every field an older or newer agent leaves out', () => {
    const text = formatStatus({ schema: 1, cache: { bytes: 5 * GiB } } as StatusInput, { ready: true, failed: [] }, 'http://a:5050', NOW)
    expect(text).toBe(
      [
        'Agent:       http://a:5050',
        'Ready:       yes',
        'Mode:        unknown',
        'PeerId:      unknown',
        'Seed:        unknown',
        'Token:       unknown',
        'Cache:       5.0 GiB',
        'Peers:       unknown',
        'Last errors: unknown',
        '',
      ].join('\n'),
    )
  })
})
