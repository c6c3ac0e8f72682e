import { Writable } from 'node:stream'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { LOG_OPTIONS, REDACTED, scrubSecrets } from './log-options.js'

/** A logger configured as both main.ts files configure theirs, writing into `lines`. */
function capture(): { logger: pino.Logger; text: () => string } {
  const chunks: string[] = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString())
      done()
    },
  })
  return { logger: pino({ level: 'trace', base: { service: 'test' }, ...LOG_OPTIONS }, sink), text: () => chunks.join('') }
}

const JWT = 'eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0.eyJzdWIiOiIxMkQzS29vVyJ9.c2lnbmF0dXJlLXNlY3JldA'
const SECRETS = {
  bearer: 'bearer-secret-0001',
  basic: 'YWxpY2U6cGE1NS14eXp6eQ==',
  token: 'token-secret-0002',
  joinToken: 'pjt_joinsecret0003abcdef',
  oidcToken: 'oidc-secret-0004',
  password: 'password-secret-0005',
  mirror: 'mirror-secret-0006',
  cookie: 'cookie-secret-0007',
  errHeader: 'err-header-secret-0008',
}

describe('log redaction (LOG_OPTIONS)', () => {
  it('writes no token, credential or Authorization header, whatever the object logged', () => {
    const { logger, text } = capture()
    const child = logger.child({ component: 'mirror' })
    child.info({ req: { method: 'GET', url: '/v2/', headers: { authorization: `Bearer ${SECRETS.bearer}`, cookie: SECRETS.cookie } } }, 'request')
    child.info({ headers: { authorization: `Basic ${SECRETS.basic}`, 'x-pollen-mirror-token': SECRETS.mirror } }, 'headers')
    logger.warn({ token: SECRETS.token, body: { joinToken: SECRETS.joinToken, oidcToken: SECRETS.oidcToken } }, 'enrollment')
    logger.error({ upstream: { password: SECRETS.password }, joinToken: SECRETS.joinToken }, 'credentials')
    const err = Object.assign(new Error(`request failed with Authorization: Bearer ${SECRETS.bearer} and ${JWT}`), {
      headers: { authorization: `Bearer ${SECRETS.errHeader}` },
    })
    logger.error({ err }, 'request failed')
    logger.warn({ err: `seed answered 401 for join token ${SECRETS.joinToken}` }, 'could not enroll')
    logger.child({ component: 'admission' }).debug({ answer: { token: JWT } }, 'answer')
    const out = text()
    for (const secret of [...Object.values(SECRETS), JWT]) expect(out).not.toContain(secret)
    expect(out).toContain(REDACTED)
    const lines = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(lines).toHaveLength(7)
    expect((lines[4]!.err as { message: string }).message).toMatch(/^request failed with Authorization: Bearer \[redacted\] and \[redacted\]/)
  })

  it('keeps what is not a secret: messages, components, and lists of registries named "credentials"', () => {
    const { logger, text } = capture()
    logger.child({ component: 'seed' }).info({ credentials: ['docker.io', 'ghcr.io'], url: 'http://127.0.0.1:5000' }, 'seed listening')
    const line = JSON.parse(text()) as Record<string, unknown>
    expect(line).toMatchObject({ component: 'seed', credentials: ['docker.io', 'ghcr.io'], url: 'http://127.0.0.1:5000', msg: 'seed listening' })
  })
})

describe('scrubSecrets', () => {
  it('replaces Bearer and Basic credentials, JWTs and join tokens in free text', () => {
    expect(scrubSecrets('Authorization: Bearer abc.def-ghi')).toBe('Authorization: Bearer [redacted]')
    expect(scrubSecrets('basic YWxpY2U6cGFzcw==, next')).toBe('basic [redacted], next')
    expect(scrubSecrets(`token ${JWT} refused`)).toBe('token [redacted] refused')
    expect(scrubSecrets('join token pjt_0123456789abcdef used up')).toBe('join token [redacted] used up')
    expect(scrubSecrets('connect ECONNREFUSED 127.0.0.1:5000')).toBe('connect ECONNREFUSED 127.0.0.1:5000')
  })
})
