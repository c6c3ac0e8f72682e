import { describe, expect, it } from 'vitest'
import { MAX_CONFIG_FILE_BYTES, configFilePath, envName, keyLabel, mergeSources, withOrigins, type ConfigSources } from './config-sources.js'
import { ConfigError, sizeFlag } from './config-values.js'

const OPTIONS = {
  config: { type: 'string' },
  size: { type: 'string' },
  'tag-ttl': { type: 'string' },
  peer: { type: 'string', multiple: true },
  quiet: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const

type Values = Record<string, string | boolean | string[] | undefined>
const file = (text: string): ConfigSources['file'] => ({ path: '/etc/pollen/test.yaml', text })
const merge = (flags: Values, sources: ConfigSources) => mergeSources(OPTIONS, flags, sources)

/** The ConfigError `fn` throws. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn()
  } catch (err) {
    if (err instanceof ConfigError) return err
    throw err
  }
  throw new Error('no ConfigError thrown')
}

describe('mergeSources', () => {
  it('takes each option from the flag, else the environment, else the file, recording where', () => {
    const sources = { env: { POLLEN_SIZE: '2GiB', POLLEN_TAG_TTL: '1m' }, file: file('size: 3GiB\ntag-ttl: 2m\npeer: [a, b]\nquiet: true\n') }
    const merged = merge({ size: '1GiB' }, sources)
    expect(merged.values).toEqual({ size: '1GiB', 'tag-ttl': '1m', peer: ['a', 'b'], quiet: true })
    expect(merged.origins).toEqual({
      'tag-ttl': { kind: 'env', name: 'POLLEN_TAG_TTL' },
      peer: { kind: 'file', path: '/etc/pollen/test.yaml' },
      quiet: { kind: 'file', path: '/etc/pollen/test.yaml' },
    })
    expect(merge({}, {}).origins).toBeUndefined()
  })

  it('takes a repeatable option whole from the one source that wins', () => {
    const fromFile = file('peer:\n  - f1\n  - f2\n')
    expect(merge({}, { file: fromFile }).values.peer).toEqual(['f1', 'f2'])
    expect(merge({}, { env: { POLLEN_PEER: 'e1, e2' }, file: fromFile }).values.peer).toEqual(['e1', 'e2'])
    expect(merge({ peer: ['x'] }, { env: { POLLEN_PEER: 'e1,e2' }, file: fromFile }).values.peer).toEqual(['x'])
    expect(merge({}, { file: file('peer: only\n') }).values.peer).toEqual(['only'])
  })

  it('turns YAML numbers into the text a flag would carry, so sizes and durations may be numbers', () => {
    const merged = merge({}, { file: file('size: 1048576\ntag-ttl: 30\npeer: [1, two]\n') })
    expect(merged.values).toMatchObject({ size: '1048576', 'tag-ttl': '30', peer: ['1', 'two'] })
    expect(merge({}, { file: file('size: 20GiB\ntag-ttl: 10m\n') }).values).toMatchObject({ size: '20GiB', 'tag-ttl': '10m' })
  })

  it('treats an empty variable as unset and reads booleans as true or false', () => {
    expect(merge({}, { env: { POLLEN_SIZE: '  ', POLLEN_QUIET: 'false' }, file: file('size: 5GiB') }).values).toMatchObject({ size: '5GiB', quiet: false })
    expect(configError(() => merge({}, { env: { POLLEN_QUIET: 'yes' } })).message).toBe('invalid POLLEN_QUIET: "yes" must be true or false')
    expect(configError(() => merge({}, { env: { POLLEN_PEER: 'a,,b' } })).message).toMatch(/^invalid POLLEN_PEER: has an empty item/)
  })

  it('warns about an unknown POLLEN_ variable (a shared environment, Kubernetes service links), suggesting the near miss, but not about the program\'s other variables or POLLEN_CONFIG', () => {
    expect(merge({}, { env: { POLLEN_SIZ: '1' } }).warnings).toEqual(['ignoring POLLEN_SIZ: no option has this name (did you mean POLLEN_SIZE?)'])
    expect(merge({}, { env: { POLLEN_SEED_SERVICE_HOST: '10.0.0.1', POLLEN_SEED_PORT: 'tcp://10.0.0.1:5000' } }).warnings).toHaveLength(2)
    expect(merge({}, { env: { POLLEN_SIZE: '1' } }).warnings).toEqual([])
    expect(configError(() => merge({}, { env: { POLLEN_HELP: 'true' } })).message).toBe('invalid POLLEN_HELP: --help can only be given on the command line')
    expect(() => mergeSources(OPTIONS, {}, { env: { POLLEN_SECRET: 'x', POLLEN_CONFIG: '/x.yaml', HOME: '/root', pollen_lower: 'x' } }, { otherEnv: ['POLLEN_SECRET'] })).not.toThrow()
  })

  it('refuses an unknown key in the file, naming it and the file', () => {
    expect(configError(() => merge({}, { file: file('tag-tll: 1m\n') })).message).toBe('invalid tag-tll in /etc/pollen/test.yaml: unknown key (did you mean tag-ttl?)')
    expect(configError(() => merge({}, { file: file('--size: 1\n') })).message).toBe('invalid --size in /etc/pollen/test.yaml: unknown key (did you mean size?)')
    expect(configError(() => merge({}, { file: file('config: other.yaml\n') })).message).toMatch(/^invalid config in \/etc\/pollen\/test.yaml: --config can only be given on the command line/)
  })

  it('refuses values of the wrong type, naming the key in the file', () => {
    const cases: Array<[string, RegExp]> = [
      ['size:\n', /^invalid size in \/etc\/pollen\/test.yaml: has no value/],
      ['size: [1, 2]\n', /^invalid size in .*: must be a string or a number$/],
      ['size: { a: 1 }\n', /^invalid size in .*: must be a string or a number$/],
      ['quiet: "yes"\n', /^invalid quiet in .*: must be true or false$/],
      ['quiet: yes\n', /^invalid quiet in .*: must be true or false$/],
      ['peer: []\n', /^invalid peer in .*: is an empty list/],
      ['peer: [[a]]\n', /^invalid peer in .*: must be a list of strings or numbers$/],
    ]
    for (const [text, message] of cases) expect(configError(() => merge({}, { file: file(text) })).message, text).toMatch(message)
  })

  it('reports invalid YAML on one line with its line number', () => {
    const cases: Array<[string, RegExp]> = [
      ['size: 1GiB\nsize: 2GiB\n', /^invalid \/etc\/pollen\/test.yaml: line 2, column 1: Map keys must be unique$/],
      ['size: 1GiB\npeer: [a, b\n', /^invalid \/etc\/pollen\/test.yaml: line \d+, column \d+: [^\n]+$/],
      ['size: "1GiB\n', /^invalid \/etc\/pollen\/test.yaml: line \d+, column \d+: [^\n]+$/],
      ['- size\n- peer\n', /^invalid \/etc\/pollen\/test.yaml: must be a mapping of option names to values/],
      ['size: 1\n---\nsize: 2\n', /^invalid \/etc\/pollen\/test.yaml: line 2, column 1: holds more than one YAML document$/],
      ['\tsize: 1\n', /^invalid \/etc\/pollen\/test.yaml: line 1, column 1: Tabs are not allowed as indentation$/],
      ['size: !!binary aGk=\n', /^invalid size in \/etc\/pollen\/test.yaml: must be a string or a number$/],
    ]
    for (const [text, message] of cases) {
      const err = configError(() => merge({}, { file: file(text) }))
      expect(err.message, text).toMatch(message)
      expect(err.message).not.toContain('\n')
    }
  })

  it('bounds the file: its size and alias expansion', () => {
    expect(configError(() => merge({}, { file: file(`# ${'x'.repeat(MAX_CONFIG_FILE_BYTES)}\n`) })).message).toMatch(/^invalid \/etc\/pollen\/test.yaml: larger than 1 MiB$/)
    const bomb = 'a: &a [x, x, x, x, x, x, x, x, x, x]\n' + Array.from({ length: 20 }, (_, i) => `k${i}: [*a, *a, *a]`).join('\n')
    expect(configError(() => merge({}, { file: file(bomb) })).message).toBe('invalid /etc/pollen/test.yaml: Excessive alias count indicates a resource exhaustion attack')
  })

  it('accepts an empty or comment-only file', () => {
    expect(merge({}, { file: file('') }).values).toEqual({})
    expect(merge({}, { file: file('# nothing yet\n') }).values).toEqual({})
  })
})

describe('withOrigins', () => {
  it('names the key as the user wrote it in errors about values from the environment or the file', () => {
    const build = (v: Values) => sizeFlag('size', String(v.size))
    const fromEnv = merge({}, { env: { POLLEN_SIZE: 'lots' } })
    expect(configError(() => withOrigins(fromEnv, build)).message).toBe('invalid POLLEN_SIZE: "lots" is not a size (examples: 1048576, 512MiB, 20GiB)')
    const fromFile = merge({}, { file: file('size: lots') })
    expect(configError(() => withOrigins(fromFile, build)).message).toMatch(/^invalid size in \/etc\/pollen\/test.yaml: "lots" is not a size/)
    const fromFlag = merge({ size: 'lots' }, { env: { POLLEN_SIZE: '1GiB' } })
    expect(configError(() => withOrigins(fromFlag, build)).message).toMatch(/^invalid --size: "lots" is not a size/)
  })
})

describe('configFilePath', () => {
  it('takes --config FILE or --config=FILE over POLLEN_CONFIG, and nothing when help is asked for', () => {
    expect(configFilePath(['--config', 'a.yaml'], { POLLEN_CONFIG: 'b.yaml' })).toEqual({ path: 'a.yaml', label: '--config' })
    expect(configFilePath(['--size', '1', '--config=a.yaml'], {})).toEqual({ path: 'a.yaml', label: '--config' })
    expect(configFilePath([], { POLLEN_CONFIG: ' b.yaml ' })).toEqual({ path: 'b.yaml', label: 'POLLEN_CONFIG' })
    expect(configFilePath([], { POLLEN_CONFIG: '' })).toBeUndefined()
    expect(configFilePath(['--help', '--config', 'a.yaml'], {})).toBeUndefined()
    expect(() => configFilePath(['--config='], {})).toThrow(/invalid --config: give a file path/)
  })
})

describe('names', () => {
  it('spells environment variables and labels from the option name', () => {
    expect(envName('cache-high-watermark')).toBe('POLLEN_CACHE_HIGH_WATERMARK')
    expect(keyLabel(undefined, 'cache-size')).toBe('--cache-size')
    expect(keyLabel({ 'cache-size': { kind: 'file', path: 'a.yaml' } }, 'cache-size')).toBe('cache-size in a.yaml')
  })
})
