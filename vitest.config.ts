import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['{protocol,content,agent,seed,chaos}/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    reporters: ['default', './test/summary-reporter.ts'],
  },
})
