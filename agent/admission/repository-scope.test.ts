import { describe, expect, it } from 'vitest'
import { scopeCoversAny } from './repository-scope.js'

describe('scopeCoversAny', () => {
  it('is true when one of the repositories the blob was seen in is covered', () => {
    expect(scopeCoversAny(['team/**'], ['127.0.0.1:5000/other/x', '127.0.0.1:5000/team/app'])).toBe(true)
    expect(scopeCoversAny(['127.0.0.1:5000/team/*'], ['127.0.0.1:5000/team/app'])).toBe(true)
  })

  it('is false when none is covered, including a pattern pinned to another registry', () => {
    expect(scopeCoversAny(['other/**'], ['127.0.0.1:5000/team/app'])).toBe(false)
    expect(scopeCoversAny(['ghcr.io/team/**'], ['127.0.0.1:5000/team/app'])).toBe(false)
  })

  it('covers nothing for a blob seen in no known repository, or in a key without a registry', () => {
    expect(scopeCoversAny(['**'], [])).toBe(false)
    expect(scopeCoversAny(['**'], ['app'])).toBe(false)
  })
})
