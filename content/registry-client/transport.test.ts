import { describe, expect, it } from 'vitest'
import { parseLength, redirectTarget } from './transport.js'

describe('redirectTarget', () => {
  const from = new URL('https://registry.example/v2/a/blobs/sha256:x')

  it('resolves absolute and relative locations', () => {
    expect(redirectTarget(from, 'https://cdn.example/o?sig=1').href).toBe('https://cdn.example/o?sig=1')
    expect(redirectTarget(from, '/other').href).toBe('https://registry.example/other')
    expect(redirectTarget(new URL('http://127.0.0.1:5000/x'), 'http://127.0.0.2:9/y').host).toBe('127.0.0.2:9')
  })

  it('refuses a downgrade from https to http, other schemes, user info and repeated Location headers', () => {
    for (const location of ['http://cdn.example/o', 'file:///etc/passwd', 'data:,x', 'https://user:pw@cdn.example/o', ['https://a/', 'https://b/']]) {
      expect(() => redirectTarget(from, location)).toThrow(expect.objectContaining({ code: 'UpstreamProtocolError' }))
    }
  })
})

describe('parseLength', () => {
  it('reads non-negative integers only', () => {
    expect(parseLength('0')).toBe(0)
    expect(parseLength(' 42 ')).toBe(42)
    for (const junk of [undefined, '', '-1', '1.5', '1e3', '0x10', '99999999999999999']) expect(parseLength(junk)).toBeUndefined()
  })
})
