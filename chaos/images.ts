/**
 * The soak's generated images: IMAGES repositories (chaos/app-a, …), each getting new versions
 * over time. A version has a base layer that never changes, a middle layer that changes every
 * MID_EVERY versions and a top layer and config that change every version, so later versions
 * share some blobs with earlier ones and the rest is new content.
 */
import { createHash } from 'node:crypto'
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { makeBlobFile, writeBlobFile, type BlobFile } from '../test/helpers/blob-file.js'
import { MEDIA_TYPES } from '../test/helpers/oci-image.js'
import { RegistryClient } from '../test/helpers/registry-client.js'
import { BASE_LAYER_BYTES, IMAGES, MID_EVERY, MID_LAYER_BYTES, TOP_LAYER_BYTES } from './constants.js'

/** What a pull of `repo:tag` must yield. */
export interface ImageVersion {
  repo: string
  tag: string
  manifestDigest: string
  /** Config and layers: digest → size. */
  blobs: Map<string, number>
}

export class ImageSuite {
  readonly repos: string[]
  readonly #client: RegistryClient
  readonly #dir: string
  readonly #salt: string
  readonly #versions: number[]
  readonly #current: Array<ImageVersion | undefined>

  /** `dir` is scratch space for generated blobs; `salt` makes this run's bytes its own. */
  constructor(registryUrl: string, dir: string, salt: string) {
    this.#client = new RegistryClient(registryUrl)
    this.#dir = dir
    this.#salt = salt
    this.repos = Array.from({ length: IMAGES }, (_, i) => `chaos/app-${String.fromCharCode(97 + i)}`)
    this.#versions = this.repos.map(() => 0)
    this.#current = this.repos.map(() => undefined)
  }

  /** The newest version of every image; throws before the first release of each. */
  current(): ImageVersion[] {
    return this.#current.map((v, i) => {
      if (v === undefined) throw new Error(`${this.repos[i]} has no version yet`)
      return v
    })
  }

  /** Builds and pushes the next version of image `index`; resolves to it. */
  async release(index: number): Promise<ImageVersion> {
    const repo = this.repos[index]!
    const version = ++this.#versions[index]!
    const tag = `v${version}`
    const dir = join(this.#dir, `${index}-${version}`)
    await mkdir(dir, { recursive: true })
    try {
      const key = `${this.#salt}/${repo}`
      const layers = [
        await makeBlobFile(dir, BASE_LAYER_BYTES, `${key}/base`),
        await makeBlobFile(dir, MID_LAYER_BYTES, `${key}/mid/${Math.floor((version - 1) / MID_EVERY)}`),
        await makeBlobFile(dir, TOP_LAYER_BYTES, `${key}/top/${version}`),
      ]
      const config = await writeBlobFile(
        dir,
        Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Labels: { 'dev.pollen.chaos.version': `${key}:${tag}` } }, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) } })),
      )
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MEDIA_TYPES.ociManifest,
          config: { mediaType: MEDIA_TYPES.ociConfig, digest: config.digest, size: config.size },
          layers: layers.map((l) => ({ mediaType: MEDIA_TYPES.ociLayer, digest: l.digest, size: l.size })),
        }),
      )
      for (const blob of [config, ...layers]) await this.#client.pushBlob(repo, blob)
      const manifestDigest = await this.#client.pushManifest(repo, tag, manifest, MEDIA_TYPES.ociManifest)
      if (manifestDigest !== sha256(manifest)) throw new Error(`${repo}:${tag}: registry stored another manifest`)
      const pushed: ImageVersion = { repo, tag, manifestDigest, blobs: blobSizes([config, ...layers]) }
      this.#current[index] = pushed
      return pushed
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }
}

function blobSizes(files: BlobFile[]): Map<string, number> {
  return new Map(files.map((f) => [f.digest, f.size]))
}

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`
}
