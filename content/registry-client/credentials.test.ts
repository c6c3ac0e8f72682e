import { describe, expect, it } from 'vitest'
import { loadDockerConfig } from './credentials.js'

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64')

function thrown(fn: () => unknown): Error & { code?: string } {
  try {
    fn()
  } catch (err) {
    return err as Error & { code?: string }
  }
  throw new Error('expected a throw')
}

describe('loadDockerConfig', () => {
  it('reads base64 auth and username/password entries by canonical registry host', () => {
    const creds = loadDockerConfig(
      JSON.stringify({
        auths: {
          'https://index.docker.io/v1/': { auth: b64('hubuser:hub:pass:with:colons') },
          'Registry.Example.com': { username: 'alice', password: 's3cret' },
          'http://127.0.0.1:5000/some/path': { auth: b64('bob:pw') },
          'ghcr.io': { auth: '', username: 'carol', password: 'tok' },
        },
      }),
    )
    expect(creds.get('docker.io')).toEqual({ username: 'hubuser', password: 'hub:pass:with:colons' })
    expect(creds.get('registry.example.com')).toEqual({ username: 'alice', password: 's3cret' })
    expect(creds.get('127.0.0.1:5000')).toEqual({ username: 'bob', password: 'pw' })
    expect(creds.get('ghcr.io')).toEqual({ username: 'carol', password: 'tok' })
  })

  it('skips entries with neither auth nor username/password, and a file without auths', () => {
    const creds = loadDockerConfig(JSON.stringify({ auths: { 'quay.io': {}, 'gcr.io': { identitytoken: 'x' } }, credsStore: 'desktop' }))
    expect(creds.size).toBe(0)
    expect(loadDockerConfig('{"credHelpers":{}}').size).toBe(0)
  })

  it('treats registry-1.docker.io and index.docker.io as docker.io and accepts the same credentials twice', () => {
    const creds = loadDockerConfig(JSON.stringify({ auths: { 'registry-1.docker.io': { auth: b64('u:p') }, 'index.docker.io': { username: 'u', password: 'p' } } }))
    expect([...creds.keys()]).toEqual(['docker.io'])
  })

  it('refuses two different credentials for one registry', () => {
    const err = thrown(() => loadDockerConfig(JSON.stringify({ auths: { 'docker.io': { auth: b64('u:pw-alpha') }, 'https://index.docker.io/v1/': { auth: b64('u:pw-bravo') } } })))
    expect(err.code).toBe('CredentialsFileError')
    expect(err.message).not.toContain('pw-alpha')
    expect(err.message).not.toContain('pw-bravo')
  })

  it('reports invalid JSON without quoting the file', () => {
    const err = thrown(() => loadDockerConfig('{"auths": {"x": {"password": "hunter2-secret"}'))
    expect(err.code).toBe('CredentialsFileError')
    expect(err.message).not.toContain('hunter2')
    expect(err.cause).toBeUndefined()
  })

  it('reports malformed auth values without the secret', () => {
    for (const auth of ['not base64 hunter2!', b64('no-colon-hunter2'), b64(':hunter2'), 42]) {
      const err = thrown(() => loadDockerConfig(JSON.stringify({ auths: { 'r.example': { auth } } })))
      expect(err.code).toBe('CredentialsFileError')
      expect(err.message).not.toContain('hunter2')
      expect(err.message).not.toContain(String(auth))
      expect(err.message).toContain('r.example')
    }
  })

  it('reports a half entry, a non-object entry and a key that is no registry host', () => {
    expect(thrown(() => loadDockerConfig(JSON.stringify({ auths: { 'r.example': { username: 'u' } } }))).code).toBe('CredentialsFileError')
    expect(thrown(() => loadDockerConfig(JSON.stringify({ auths: { 'r.example': 'u:p' } }))).code).toBe('CredentialsFileError')
    expect(thrown(() => loadDockerConfig(JSON.stringify({ auths: { 'not a host!': { auth: b64('u:p') } } }))).code).toBe('CredentialsFileError')
    expect(thrown(() => loadDockerConfig(JSON.stringify({ auths: [] }))).code).toBe('CredentialsFileError')
    expect(thrown(() => loadDockerConfig('[]')).code).toBe('CredentialsFileError')
  })
})
