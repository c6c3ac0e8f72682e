import { describe, expect, it } from 'vitest'
import { boundedLabel, methodLabel, remoteAnswered, requestCodeLabel, statusLabel } from './metric-conventions.js'

describe('metric label helpers', () => {
  it('keep values of their bounded set and turn anything else into "other"', () => {
    expect(boundedLabel('scope', new Set(['scope']))).toBe('scope')
    expect(boundedLabel('made-up', new Set(['scope']))).toBe('other')
    expect(boundedLabel(undefined, new Set(['scope']))).toBe('other')
    expect(methodLabel('HEAD')).toBe('HEAD')
    expect(methodLabel('PROPFIND')).toBe('other')
    expect(statusLabel(404)).toBe('404')
    expect(statusLabel(0)).toBe('other')
    expect(requestCodeLabel('timeout')).toBe('timeout')
    expect(requestCodeLabel('error')).toBe('error')
    expect(requestCodeLabel('503')).toBe('503')
    expect(requestCodeLabel('ECONNRESET')).toBe('other')
  })

  it('count any HTTP answer as the remote having answered', () => {
    expect(remoteAnswered('503')).toBe(true)
    expect(remoteAnswered('error')).toBe(false)
    expect(remoteAnswered('timeout')).toBe(false)
  })
})
