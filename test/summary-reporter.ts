import type { Reporter } from 'vitest/reporters'

type Task = { type: string; mode?: string; result?: { state?: string }; tasks?: Task[] }

/** Prints one closing line, `N passed, N failed, N skipped`, after vitest's own summary (for CI logs). */
export default class SummaryReporter implements Reporter {
  onFinished(files: Task[] = []): void {
    const counts = { passed: 0, failed: 0, skipped: 0 }
    const visit = (task: Task): void => {
      if (task.type === 'test') {
        if (task.mode === 'skip' || task.mode === 'todo') counts.skipped++
        else if (task.result?.state === 'pass') counts.passed++
        else if (task.result?.state === 'fail') counts.failed++
        else counts.skipped++
      }
      for (const child of task.tasks ?? []) visit(child)
    }
    for (const file of files) {
      visit(file)
      if (file.result?.state === 'fail' && (file.tasks ?? []).length === 0) counts.failed++
    }
    process.stdout.write(`\n${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped\n`)
  }
}
