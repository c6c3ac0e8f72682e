import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MAX_CONFIG_FILE_BYTES } from '../protocol/config-sources.js'
import { readConfigSources } from './config-file.js'

describe('readConfigSources', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pollen-config-'))
  })
  afterAll(() => rm(dir, { recursive: true, force: true }))

  it('reads the file named by --config, else by POLLEN_CONFIG, and passes the environment along', async () => {
    const path = join(dir, 'agent.yaml')
    await writeFile(path, 'cache-size: 1GiB\n')
    const env = { POLLEN_CONFIG: join(dir, 'other.yaml') }
    expect(await readConfigSources(['--config', path], env)).toEqual({ env, file: { path, text: 'cache-size: 1GiB\n' } })
    expect(await readConfigSources([], { POLLEN_CONFIG: path })).toMatchObject({ file: { path } })
    expect(await readConfigSources([], {})).toEqual({ env: {} })
  })

  it('names --config or POLLEN_CONFIG when the file cannot be read', async () => {
    const missing = join(dir, 'missing.yaml')
    await expect(readConfigSources(['--config', missing], {})).rejects.toThrow(/^invalid --config: ENOENT/)
    await expect(readConfigSources([], { POLLEN_CONFIG: missing })).rejects.toThrow(/^invalid POLLEN_CONFIG: ENOENT/)
  })

  it('refuses a file larger than the limit without reading it all', async () => {
    const path = join(dir, 'big.yaml')
    await writeFile(path, Buffer.alloc(MAX_CONFIG_FILE_BYTES + 10, 0x20))
    await expect(readConfigSources(['--config', path], {})).rejects.toThrow(/^invalid --config: .*big.yaml is larger than 1 MiB$/)
  })
})
