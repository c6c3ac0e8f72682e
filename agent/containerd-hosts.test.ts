import { mkdtemp, readFile, readdir, rm, stat, writeFile, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { hostsToml, mirrorUrl, writeHostsFiles } from './containerd-hosts.js'

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pollen-hosts-'))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('configure-containerd hosts files', () => {
  it('points containerd at the agent with pull and resolve, keeping the registry as server', () => {
    const toml = hostsToml('docker.io', 'http://127.0.0.1:5050')
    expect(toml).toContain('server = "https://registry-1.docker.io"')
    expect(toml).toContain('[host."http://127.0.0.1:5050"]')
    expect(toml).toContain('capabilities = ["pull", "resolve"]')
    expect(hostsToml('127.0.0.1:5055', 'http://127.0.0.1:5050')).toContain('server = "http://127.0.0.1:5055"')
    expect(hostsToml('_default', 'http://127.0.0.1:5050')).not.toContain('server =')
  })

  it('writes the mirror token as a header for containerd to send, in a file only root reads', async () => {
    const token = 'feedfacefeedfacefeedfacefeedface'
    const toml = hostsToml('docker.io', 'http://10.1.2.3:5050', token)
    expect(toml).toContain(`[host."http://10.1.2.3:5050".header]\n    X-Pollen-Mirror-Token = "${token}"`)
    const [r] = await writeHostsFiles(dir, ['docker.io'], 'http://10.1.2.3:5050', { mirrorToken: token })
    expect((await stat(r!.path)).mode & 0o777).toBe(0o600)
    expect(await readFile(r!.path, 'utf8')).toBe(toml)
  })

  it('uses a loopback mirror URL when the agent listens on every interface', () => {
    expect(mirrorUrl({ host: '0.0.0.0', port: 5050 })).toBe('http://127.0.0.1:5050')
    expect(mirrorUrl({ host: '::', port: 5050 })).toBe('http://[::1]:5050')
    expect(mirrorUrl({ host: '10.1.2.3', port: 5050 })).toBe('http://10.1.2.3:5050')
  })

  it('is idempotent, and backs up a file it replaces', async () => {
    const first = await writeHostsFiles(dir, ['docker.io', 'ghcr.io'], 'http://127.0.0.1:5050')
    expect(first.map((r) => r.action)).toEqual(['created', 'created'])
    const again = await writeHostsFiles(dir, ['docker.io', 'ghcr.io'], 'http://127.0.0.1:5050')
    expect(again.map((r) => r.action)).toEqual(['unchanged', 'unchanged'])
    expect(await readdir(join(dir, 'docker.io'))).toEqual(['hosts.toml'])

    await mkdir(join(dir, 'quay.io'), { recursive: true })
    await writeFile(join(dir, 'quay.io', 'hosts.toml'), 'server = "https://quay.io"\n# the operator\'s own\n')
    const [replaced] = await writeHostsFiles(dir, ['quay.io'], 'http://127.0.0.1:5050')
    expect(replaced!.action).toBe('updated')
    expect(await readFile(replaced!.backup!, 'utf8')).toContain("the operator's own")
    expect(await readFile(join(dir, 'quay.io', 'hosts.toml'), 'utf8')).toContain('[host."http://127.0.0.1:5050"]')
  })

  it('writes _default for every registry', async () => {
    const [r] = await writeHostsFiles(dir, ['_default'], 'http://127.0.0.1:5050')
    expect(r!.path).toBe(join(dir, '_default', 'hosts.toml'))
  })
})
