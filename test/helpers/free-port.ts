import { createServer } from 'node:net'

/**
 * Asks the kernel for a currently unused TCP port on `host` (listen on 0, read, close).
 * Racy by nature: another process may take the port before the caller binds it, so callers
 * that spawn servers should retry on EADDRINUSE.
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.once('error', reject)
    server.listen({ host, port: 0, exclusive: true }, () => {
      const address = server.address()
      if (address === null || typeof address === 'string') {
        server.close()
        reject(new Error(`could not read the port bound on ${host}`))
        return
      }
      server.close((err) => (err ? reject(err) : resolve(address.port)))
    })
  })
}
