import { ConfigError } from '../../protocol/config-values.js'

/** The message of the ConfigError `fn` throws. Rethrows any other error; throws when `fn` returns. */
export function configErrorMessage(fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    if (err instanceof ConfigError) return err.message
    throw err
  }
  throw new Error('no ConfigError thrown')
}
