import { execFile } from 'node:child_process'
import { randomUUID, timingSafeEqual, X509Certificate } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { importPKCS8, SignJWT } from 'jose'
import { freePort } from './free-port.js'

export interface TokenServerOptions {
  /** Loopback address to listen on; default 127.0.0.1 (127.0.0.2 works as a "foreign" host). */
  host?: string
  /** The registry's `auth.token.service`; becomes the token audience. */
  service: string
  /** The registry's `auth.token.issuer`; becomes the token `iss`. */
  issuer: string
  /** username -> password accepted via HTTP Basic (GET) or the OAuth2 password grant (POST). */
  users: Record<string, string>
}

export interface TokenRequestRecord {
  method: string
  url: string
  /** Whether the request carried an Authorization header (valid or not). */
  authorized: boolean
}

export interface TokenServer {
  /** `http://HOST:PORT/token`, for the registry's `auth.token.realm`. */
  realm: string
  host: string
  port: number
  service: string
  issuer: string
  /** PEM of the self-signed signing certificate, for the registry's `auth.token.rootcertbundle`. */
  rootCertBundlePath: string
  /** Every request received, in order, including rejected ones. */
  requests: TokenRequestRecord[]
  /** Closes the server and removes the key material. Idempotent. */
  stop(): Promise<void>
}

interface AccessEntry {
  type: string
  name: string
  actions: string[]
}

const TOKEN_TTL_SECONDS = 300
const OPENSSL_TIMEOUT_MS = 30_000
const MAX_FORM_BYTES = 64 * 1024

/**
 * A docker "token authentication" issuer good enough for docker-registry 2.8: an ES256 key
 * and self-signed cert made with the openssl CLI, tokens carrying the cert in `x5c`.
 * Valid users get every scope they ask for (`repository:NAME:ACTIONS`, `registry:catalog:*`);
 * anyone else gets 401. Serves GET (Basic) and POST (OAuth2 password grant, as containerd
 * tries first) on `/token`.
 */
export async function startTokenServer(opts: TokenServerOptions): Promise<TokenServer> {
  const host = opts.host ?? '127.0.0.1'
  const dir = await mkdtemp(join(tmpdir(), 'pollen-token-'))
  try {
    const keyPath = join(dir, 'key.pem')
    const certPath = join(dir, 'cert.pem')
    await promisify(execFile)(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
        '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', '/CN=pollen-test-token-issuer'],
      { timeout: OPENSSL_TIMEOUT_MS },
    )
    const key = await importPKCS8(await readFile(keyPath, 'utf8'), 'ES256')
    const certDer = new X509Certificate(await readFile(certPath)).raw.toString('base64')

    const requests: TokenRequestRecord[] = []
    const issue = async (subject: string, scopes: string[]): Promise<object> => {
      const now = Math.floor(Date.now() / 1000)
      const access = scopes.flatMap((scope) => scope.split(' ')).filter((s) => s !== '').map(parseScope)
      const token = await new SignJWT({ access })
        .setProtectedHeader({ alg: 'ES256', typ: 'JWT', x5c: [certDer] })
        .setIssuer(opts.issuer)
        .setSubject(subject)
        .setAudience(opts.service)
        .setIssuedAt(now)
        .setNotBefore(now - 1)
        .setExpirationTime(now + TOKEN_TTL_SECONDS)
        .setJti(randomUUID())
        .sign(key)
      return { token, access_token: token, expires_in: TOKEN_TTL_SECONDS, issued_at: new Date(now * 1000).toISOString() }
    }

    const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', authorized: req.headers.authorization !== undefined })
      const url = new URL(req.url ?? '/', `http://${host}`)
      if (url.pathname !== '/token') return reply(res, 404, { errors: [{ code: 'NOT_FOUND', message: 'only /token is served' }] })
      if (req.method === 'GET') {
        const creds = parseBasic(req.headers.authorization)
        if (!creds || !checkUser(opts.users, creds.username, creds.password)) {
          return reply(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'bad or missing credentials' }] }, {
            'www-authenticate': 'Basic realm="pollen-token"',
          })
        }
        const service = url.searchParams.get('service')
        if (service !== null && service !== opts.service) return reply(res, 400, { errors: [{ code: 'DENIED', message: `unknown service ${service}` }] })
        return reply(res, 200, await issue(creds.username, url.searchParams.getAll('scope')))
      }
      if (req.method === 'POST') {
        const form = new URLSearchParams(await readBody(req))
        const username = form.get('username') ?? ''
        if (form.get('grant_type') !== 'password' || !checkUser(opts.users, username, form.get('password') ?? '')) {
          return reply(res, 401, { error: 'invalid_grant' })
        }
        const service = form.get('service')
        if (service !== null && service !== opts.service) return reply(res, 400, { error: 'invalid_request' })
        return reply(res, 200, await issue(username, form.getAll('scope')))
      }
      return reply(res, 405, { errors: [{ code: 'UNSUPPORTED', message: 'GET or POST only' }] })
    }

    const port = await freePort(host)
    const server = createServer((req, res) => {
      handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) reply(res, 500, { errors: [{ code: 'UNKNOWN', message: String(err) }] })
        else res.destroy()
      })
    })
    server.keepAliveTimeout = 1_000
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => resolve())
    })
    let stopping: Promise<void> | undefined
    return {
      realm: `http://${host}:${port}/token`,
      host,
      port,
      service: opts.service,
      issuer: opts.issuer,
      rootCertBundlePath: certPath,
      requests,
      stop: () =>
        (stopping ??= new Promise<void>((resolve) => {
          server.close(() => resolve())
          server.closeAllConnections()
        }).finally(() => rm(dir, { recursive: true, force: true }))),
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true })
    throw err
  }
}

/** `type:name:actions`, where name may itself contain ':' (e.g. a host:port prefix). */
function parseScope(scope: string): AccessEntry {
  const first = scope.indexOf(':')
  const last = scope.lastIndexOf(':')
  if (first <= 0 || last === first) throw new Error(`malformed scope ${JSON.stringify(scope)}`)
  return {
    type: scope.slice(0, first),
    name: scope.slice(first + 1, last),
    actions: scope.slice(last + 1).split(',').filter((a) => a !== ''),
  }
}

function parseBasic(header: string | undefined): { username: string; password: string } | undefined {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '')
  if (!match) return undefined
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  if (colon < 0) return undefined
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) }
}

function checkUser(users: Record<string, string>, username: string, password: string): boolean {
  if (!Object.hasOwn(users, username)) return false
  const want = Buffer.from(users[username]!, 'utf8')
  const got = Buffer.from(password, 'utf8')
  return want.length === got.length && timingSafeEqual(want, got)
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  let total = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.length
    if (total > MAX_FORM_BYTES) throw new Error('token request body too large')
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

function reply(res: ServerResponse, status: number, body: object, headers: Record<string, string> = {}): void {
  const bytes = Buffer.from(JSON.stringify(body))
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': bytes.length, ...headers })
  res.end(bytes)
}
