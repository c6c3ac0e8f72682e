/**
 * Node 20 lacks `Promise.withResolvers` (Node >= 22 has it). @libp2p/utils 7,
 * yamux 8, @libp2p/ping and it-queue call it, and without it a connection dies
 * with ECONNRESET. Import this module for its side effect before anything
 * libp2p runs (node.ts imports it first). The polyfill is installed only when
 * the runtime lacks the method; a native implementation is never replaced.
 *
 * Every libp2p call site looks the method up when it runs, not when its module
 * is evaluated, so the shim only has to be installed before the first
 * connection; importing it first in node.ts makes that true for anything that
 * reaches libp2p through createPollenNode.
 */
interface Resolvers<T> {
  promise: Promise<T>
  resolve: (value: T | PromiseLike<T>) => void
  reject: (reason?: unknown) => void
}

const PromiseCtor = Promise as unknown as { withResolvers?: <T>() => Resolvers<T> }

/** True when this module installed the polyfill (false on runtimes that have it natively). */
export const withResolversPolyfilled: boolean = typeof PromiseCtor.withResolvers !== 'function'

if (withResolversPolyfilled) {
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    enumerable: false,
    value: function withResolvers<T>(this: PromiseConstructor): Resolvers<T> {
      let resolve!: Resolvers<T>['resolve']
      let reject!: Resolvers<T>['reject']
      // Honour subclassing like the native method: `this` is the constructor.
      const promise = new this<T>((res, rej) => {
        resolve = res
        reject = rej
      })
      return { promise, resolve, reject }
    },
  })
}
