import { scopeCovers } from '../../protocol/admission.js'

/**
 * True when the scope patterns cover at least one of `repositories`, given as the content
 * store records them (`<ns>/<name>`, see repositoryKey). A blob seen in no known repository,
 * or only in keys that do not parse, is covered by nothing.
 */
export function scopeCoversAny(scope: readonly string[], repositories: readonly string[]): boolean {
  return repositories.some((key) => {
    const slash = key.indexOf('/')
    return slash > 0 && scopeCovers(scope, { ns: key.slice(0, slash), name: key.slice(slash + 1) })
  })
}
