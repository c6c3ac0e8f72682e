import type { ChildProcess } from 'node:child_process'

const KILL_GRACE_MS = 5_000

/** How a child process ended. */
export interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
  error?: Error
}

/** Resolves when `child` exits (or fails to start). */
export function exitOf(child: ChildProcess): Promise<Exit> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode })
  }
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }))
    child.once('error', (error) => resolve({ code: null, signal: null, error }))
  })
}

/** SIGTERM, then SIGKILL after 5 s; resolves once the child has exited. */
export async function stopProcess(child: ChildProcess, exited: Promise<Exit>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS)
  try {
    await exited
  } finally {
    clearTimeout(timer)
  }
}
