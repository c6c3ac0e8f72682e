import { open } from 'node:fs/promises'
import { ConfigError } from '../protocol/config-values.js'
import { MAX_CONFIG_FILE_BYTES, configFilePath, type ConfigSources } from '../protocol/config-sources.js'

/**
 * The sources besides the flags for a command's options: `env`, and the YAML file named by
 * `--config FILE` or POLLEN_CONFIG, read here (none when neither is given or help is asked
 * for). Only a composition root (main.ts) calls this. Throws ConfigError naming --config or
 * POLLEN_CONFIG when the file cannot be read or is larger than MAX_CONFIG_FILE_BYTES.
 */
export async function readConfigSources(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): Promise<ConfigSources> {
  const named = configFilePath(argv, env)
  if (named === undefined) return { env }
  try {
    return { env, file: { path: named.path, text: await readBounded(named.path, MAX_CONFIG_FILE_BYTES) } }
  } catch (err) {
    throw new ConfigError('config', (err as Error).message, named.label)
  }
}

/** The file's text; throws when it holds more than `max` bytes (read no further, so a pipe or device cannot exhaust memory). */
async function readBounded(path: string, max: number): Promise<string> {
  const fh = await open(path, 'r')
  try {
    const buf = Buffer.alloc(max + 1)
    let length = 0
    for (;;) {
      const { bytesRead } = await fh.read(buf, length, buf.length - length, null)
      if (bytesRead === 0) break
      length += bytesRead
      if (length > max) throw new Error(`${path} is larger than ${max / 1024 / 1024} MiB`)
    }
    return buf.toString('utf8', 0, length)
  } finally {
    await fh.close()
  }
}
